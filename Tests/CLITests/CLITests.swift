import Foundation
import XCTest

/// End-to-end tests of the `cogflow` binary with toy nodes (COGFLOW_TOY_NODES=1).
final class CLITests: XCTestCase {
  override func setUp() {
    XCTAssertTrue(FileManager.default.isExecutableFile(atPath: CLI.binary), "build cogflow first: \(CLI.binary)")
  }

  func testValidateGoldenMessagesAndExitStatus() throws {
    let scratch = Scratch()
    let env = CLI.environment(cache: scratch.cache)
    let out = try CLI.run(
      ["validate", "invalid.yaml", "--set", "nothing=1", "--set", "j.valu=2"], env: env, cwd: CLI.fixtures.path)
    XCTAssertEqual(out.status, 2)
    let expected = try String(contentsOf: CLI.fixtures.appendingPathComponent("invalid.expected"), encoding: .utf8)
    XCTAssertEqual(out.stderr, expected + "15 errors in invalid.yaml\n")
    let ok = try CLI.run(["validate", "toy-demo.yaml"], env: env, cwd: CLI.fixtures.path)
    XCTAssertEqual(ok.status, 0, ok.stderr)
    XCTAssertEqual(ok.stdout, "toy-demo.yaml: ok (8 nodes)\n")
    // Without toy nodes the types are unknown.
    var plain = env
    plain["COGFLOW_TOY_NODES"] = nil
    let unknown = try CLI.run(["validate", "toy-demo.yaml"], env: plain, cwd: CLI.fixtures.path)
    XCTAssertEqual(unknown.status, 2)
    XCTAssertTrue(unknown.stderr.contains("unknown node type 'toy.counter'"), unknown.stderr)
  }

  func testRunEventsPlanAndRerun() throws {
    let scratch = Scratch()
    let env = CLI.environment(cache: scratch.cache)
    let demo = CLI.fixtures.appendingPathComponent("toy-demo.yaml").path
    let log = scratch.path + "/runs.log"
    let run = try CLI.run(
      ["run", demo, "--set", "log=\(log)", "--events", scratch.path + "/events.jsonl"], env: env, cwd: scratch.path)
    XCTAssertEqual(run.status, 0, run.stderr)
    let events = jsonObjects(scratch.read("events.jsonl"))
    XCTAssertEqual(events.first?["event"] as? String, "run-start")
    XCTAssertEqual(events.last?["event"] as? String, "run-done")
    let names: Set = ["run-start", "node-cached", "node-start", "progress", "node-done", "node-failed", "run-done"]
    var keys: [String: String] = [:]
    for event in events {
      let name = try XCTUnwrap(event["event"] as? String)
      XCTAssertTrue(names.contains(name), name)
      if name.hasPrefix("node-") {
        XCTAssertNotNil(event["node"] as? String)
        XCTAssertNotNil(event["type"] as? String)
        XCTAssertEqual((event["key"] as? String)?.count, 64)
        keys[event["node"] as! String] = event["key"] as? String
      }
      if name == "node-done" { XCTAssertNotNil(event["seconds"] as? Double) }
    }
    XCTAssertEqual(keys.count, 8)
    // one computes once; sum[seed=1] and sum[seed=2] differ by value.
    XCTAssertEqual(
      scratch.lines("runs.log").map { String($0.split(separator: " ")[0]) }.sorted(),
      ["one", "sum[seed=1]", "sum[seed=2]"])

    let plan = try CLI.run(["plan", demo, "--set", "log=\(log)", "--json"], env: env, cwd: scratch.path)
    XCTAssertEqual(plan.status, 0, plan.stderr)
    let items = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as? [[String: Any]])
    XCTAssertEqual(items.count, 8)
    for item in items {
      XCTAssertEqual(item["status"] as? String, "cached")
      XCTAssertEqual(item["key"] as? String, keys[item["node"] as! String])
      XCTAssertNotNil(item["type"] as? String)
      XCTAssertNotNil(item["reason"] as? String)
    }
    let changed = try CLI.run(
      ["plan", demo, "--set", "log=\(log)", "--set", "two.factor=3", "--json"], env: env, cwd: scratch.path)
    let changedItems = try XCTUnwrap(
      try JSONSerialization.jsonObject(with: Data(changed.stdout.utf8)) as? [[String: Any]])
    let two = try XCTUnwrap(changedItems.first { $0["node"] as? String == "two" })
    XCTAssertEqual(two["status"] as? String, "run")
    XCTAssertEqual(two["reason"] as? String, "parameter factor 2 → 3")

    let again = try CLI.run(["run", demo, "--set", "log=\(log)", "--events", "-"], env: env, cwd: scratch.path)
    XCTAssertEqual(again.status, 0)
    let againEvents = jsonObjects(again.stdout)
    XCTAssertEqual(againEvents.filter { $0["event"] as? String == "node-cached" }.count, 8)
    XCTAssertEqual(againEvents.filter { $0["event"] as? String == "node-start" }.count, 0)
    XCTAssertEqual(scratch.lines("runs.log").count, 3)

    // --no-cache recomputes everything and stores nothing new.
    let nocache = try CLI.run(
      ["run", demo, "--set", "log=\(log)", "--no-cache", "--quiet"], env: env, cwd: scratch.path)
    XCTAssertEqual(nocache.status, 0)
    XCTAssertEqual(scratch.lines("runs.log").count, 6)
    // --target builds only what the target needs.
    let target = try CLI.run(
      ["run", demo, "--set", "log=\(log)", "--set", "x=50", "--target", "two", "--events", "-"], env: env,
      cwd: scratch.path)
    XCTAssertEqual(Set(jsonObjects(target.stdout).compactMap { $0["node"] as? String }), ["one", "two"])
  }

  func testFailureExitStatusAndMessage() throws {
    let scratch = Scratch()
    let path = scratch.write(
      "f.yaml",
      """
      cogflow: 1
      nodes:
        bad: { type: toy.fail, with: { message: "boom" } }
        next: { type: toy.add, in: { a: bad.out } }
        fine: { type: toy.add, with: { value: 2 } }
      """)
    let out = try CLI.run(
      ["run", path, "--events", "-"], env: CLI.environment(cache: scratch.cache), cwd: scratch.path)
    XCTAssertEqual(out.status, 1)
    XCTAssertTrue(out.stderr.contains("error: node 'bad' (toy.fail) failed: boom"), out.stderr)
    let events = jsonObjects(out.stdout)
    XCTAssertTrue(events.contains { $0["event"] as? String == "node-failed" && $0["error"] as? String == "boom" })
    XCTAssertTrue(events.contains { $0["event"] as? String == "node-done" && $0["node"] as? String == "fine" })
    XCTAssertFalse(events.contains { $0["event"] as? String == "node-start" && $0["node"] as? String == "next" })
  }

  func testSIGINTCancelsKeepsFinishedNodesAndExits130() throws {
    for sig in [SIGINT, SIGTERM] {
      let scratch = Scratch()
      let path = scratch.write(
        "c.yaml",
        """
        cogflow: 1
        nodes:
          quick: { type: toy.add, with: { value: 1 } }
          long: { type: toy.slow, in: { a: quick.out }, with: { steps: 1000, ms: 10 } }
        """)
      let env = CLI.environment(cache: scratch.cache)
      let events = scratch.path + "/events.jsonl"
      let process = try CLI.start(
        ["run", path, "--events", events], env: env, cwd: scratch.path, outputs: scratch.path + "/run")
      XCTAssertTrue(CLI.waitFor { scratch.read("events.jsonl").contains("\"progress\"") })
      kill(process.processIdentifier, sig)
      process.waitUntilExit()
      XCTAssertEqual(process.terminationStatus, 130)
      let progress = jsonObjects(scratch.read("events.jsonl")).filter { $0["event"] as? String == "progress" }
      XCTAssertLessThan(progress.count, 1000)
      let plan = try CLI.run(["plan", path, "--json"], env: env, cwd: scratch.path)
      let items = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as? [[String: Any]])
      XCTAssertEqual(items.map { $0["status"] as? String }, ["cached", "run"])
      let stats = try CLI.run(["cache", "stats", "--json"], env: env, cwd: scratch.path)
      let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any])
      XCTAssertEqual(object["entries"] as? Int, 1, "nothing partial stored")
    }
  }

  /// Two processes run the same workflow on one cache at once: every node is computed exactly once;
  /// the second process waits for keys the first is computing.
  func testTwoProcessesShareOneCache() throws {
    let scratch = Scratch()
    let log = scratch.path + "/runs.log"
    scratch.write(
      "d.yaml",
      """
      cogflow: 1
      nodes:
        top:   { type: toy.counter, with: { value: 1, ms: 300, log: \(log) } }
        left:  { type: toy.counter, in: { a: top.out }, with: { value: 2, ms: 300, log: \(log) } }
        right: { type: toy.counter, in: { a: top.out }, with: { value: 3, ms: 300, log: \(log) } }
        join:  { type: toy.add, in: { a: left.out, b: right.out } }
        out:   { type: toy.write, in: { a: join.out }, with: { path: OUT } }
      """)
    let env = CLI.environment(cache: scratch.cache)
    var processes: [Process] = []
    for i in 0..<2 {
      let text = scratch.read("d.yaml").replacingOccurrences(of: "OUT", with: scratch.path + "/out\(i).txt")
      let p = scratch.write("d\(i).yaml", text)
      processes.append(
        try CLI.start(
          ["run", p, "--events", scratch.path + "/events\(i).jsonl"], env: env, cwd: scratch.path,
          outputs: scratch.path + "/p\(i)"))
    }
    for p in processes { p.waitUntilExit() }
    XCTAssertEqual(processes.map(\.terminationStatus), [0, 0], scratch.read("p0.err") + scratch.read("p1.err"))
    let counted = scratch.lines("runs.log").map { String($0.split(separator: " ")[0]) }.sorted()
    XCTAssertEqual(counted, ["left", "right", "top"], "each node computed once across both processes")
    XCTAssertEqual(scratch.read("out0.txt"), "7\n")
    XCTAssertEqual(scratch.read("out1.txt"), "7\n")
    let cachedByOther = (0..<2).flatMap { jsonObjects(scratch.read("events\($0).jsonl")) }
      .filter {
        $0["event"] as? String == "node-cached" && ($0["message"] as? String)?.contains("another process") == true
      }
    XCTAssertFalse(cachedByOther.isEmpty, "one process waited for the other's keys")
  }

  /// SIGKILL while an output is half-written to the cache: the cache stays valid and the rerun completes.
  func testSIGKILLDuringCacheWriteLeavesCacheValid() throws {
    let scratch = Scratch()
    let path = scratch.write(
      "k.yaml",
      """
      cogflow: 1
      nodes:
        a: { type: toy.add, with: { value: 12345 } }
        b: { type: toy.mul, in: { a: a.out }, with: { factor: 2 } }
        w: { type: toy.write, in: { a: b.out }, with: { path: \(scratch.path)/out.txt } }
      """)
    let slow = CLI.environment(cache: scratch.cache, extra: ["COGFLOW_DEBUG_SLOW_WRITE_MS": "5000"])
    let process = try CLI.start(["run", path, "--quiet"], env: slow, cwd: scratch.path, outputs: scratch.path + "/run")
    let tmp = scratch.cache + "/tmp"
    XCTAssertTrue(
      CLI.waitFor {
        ((try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []).contains { !$0.hasPrefix(".") }
      },
      "no cache write started")
    kill(process.processIdentifier, SIGKILL)
    process.waitUntilExit()
    XCTAssertEqual(process.terminationReason, .uncaughtSignal)

    let env = CLI.environment(cache: scratch.cache)
    let verify = try CLI.run(["cache", "verify"], env: env, cwd: scratch.path)
    XCTAssertEqual(verify.status, 0, verify.stdout)
    XCTAssertTrue(verify.stdout.hasSuffix(": ok\n"), verify.stdout)
    let rerun = try CLI.run(["run", path, "--quiet"], env: env, cwd: scratch.path)
    XCTAssertEqual(rerun.status, 0, rerun.stderr)
    XCTAssertEqual(scratch.read("out.txt"), "24690\n")
    XCTAssertEqual(try CLI.run(["cache", "verify"], env: env, cwd: scratch.path).status, 0)
  }

  func testCorruptObjectOnDiskIsRecomputed() throws {
    let scratch = Scratch()
    let log = scratch.path + "/runs.log"
    let path = scratch.write(
      "c.yaml",
      """
      cogflow: 1
      nodes:
        a: { type: toy.counter, with: { value: 21, log: \(log) } }
        w: { type: toy.write, in: { a: a.out }, with: { path: \(scratch.path)/out.txt } }
      """)
    let env = CLI.environment(cache: scratch.cache)
    XCTAssertEqual(try CLI.run(["run", path, "--quiet"], env: env, cwd: scratch.path).status, 0)
    // Overwrite every object with garbage of the same size.
    let objects = scratch.cache + "/objects"
    for dir in try FileManager.default.contentsOfDirectory(atPath: objects) {
      for file in try FileManager.default.contentsOfDirectory(atPath: objects + "/" + dir) {
        let p = objects + "/" + dir + "/" + file
        let size = (try FileManager.default.attributesOfItem(atPath: p)[.size] as? Int) ?? 0
        try Data(repeating: UInt8(ascii: "7"), count: size).write(to: URL(fileURLWithPath: p))
      }
    }
    let rerun = try CLI.run(["run", path, "--events", "-"], env: env, cwd: scratch.path)
    XCTAssertEqual(rerun.status, 0, rerun.stderr)
    XCTAssertEqual(scratch.read("out.txt"), "21\n", "the corrupt bytes were never returned")
    XCTAssertTrue(jsonObjects(rerun.stdout).contains { $0["event"] as? String == "cache-corrupt" })
    XCTAssertEqual(scratch.lines("runs.log").count, 2, "a was recomputed")
    XCTAssertEqual(try CLI.run(["cache", "verify"], env: env, cwd: scratch.path).status, 0)
  }

  func testCacheCommands() throws {
    let scratch = Scratch()
    let env = CLI.environment(cache: scratch.cache)
    let demo = CLI.fixtures.appendingPathComponent("toy-demo.yaml").path
    XCTAssertEqual(try CLI.run(["run", demo, "--quiet"], env: env, cwd: scratch.path).status, 0)
    func stats() throws -> [String: Any] {
      let out = try CLI.run(["cache", "stats", "--json"], env: env, cwd: scratch.path)
      return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any])
    }
    XCTAssertEqual(try stats()["entries"] as? Int, 8)
    XCTAssertEqual(try stats()["path"] as? String, scratch.cache)
    // --cache beats $COGFLOW_CACHE.
    let other = scratch.path + "/other"
    let explicit = try CLI.run(["cache", "stats", "--json", "--cache", other], env: env, cwd: scratch.path)
    XCTAssertTrue(explicit.stdout.contains("\"entries\":0"), explicit.stdout)

    let gc = try CLI.run(["cache", "gc", "--max-size", "10"], env: env, cwd: scratch.path)
    XCTAssertEqual(gc.status, 0, gc.stderr)
    XCTAssertLessThanOrEqual(try stats()["bytes"] as? Int ?? 99, 10)
    let bad = try CLI.run(["cache", "gc", "--max-size", "lots"], env: env, cwd: scratch.path)
    XCTAssertEqual(bad.status, 2)
    // A saved budget is enforced after each run.
    XCTAssertEqual(try CLI.run(["cache", "gc", "--max-size", "0", "--save"], env: env, cwd: scratch.path).status, 0)
    XCTAssertEqual(try CLI.run(["run", demo, "--quiet", "--set", "x=9"], env: env, cwd: scratch.path).status, 0)
    XCTAssertEqual(try stats()["bytes"] as? Int, 0)
    XCTAssertEqual(try stats()["maxBytes"] as? Int, 0)
    XCTAssertEqual(try CLI.run(["cache", "clear"], env: env, cwd: scratch.path).status, 0)
    XCTAssertEqual(try stats()["entries"] as? Int, 0)
  }

  func testGraphAndNodes() throws {
    let scratch = Scratch()
    let env = CLI.environment(cache: scratch.cache)
    let dot = try CLI.run(["graph", "toy-demo.yaml"], env: env, cwd: CLI.fixtures.path)
    XCTAssertEqual(dot.status, 0)
    XCTAssertTrue(dot.stdout.hasPrefix("digraph \"toy-demo\" {"), dot.stdout)
    XCTAssertTrue(dot.stdout.contains("\"one\" -> \"two\" [label=\"out → a\"];"), dot.stdout)
    XCTAssertTrue(dot.stdout.contains("\"txt[seed=2]\" -> \"len[seed=2]\""), dot.stdout)
    let mermaid = try CLI.run(["graph", "toy-demo.yaml", "--format", "mermaid"], env: env, cwd: CLI.fixtures.path)
    XCTAssertTrue(mermaid.stdout.hasPrefix("flowchart LR\n"), mermaid.stdout)
    // one→two, two→sum and txt→len for each seed.
    XCTAssertEqual(mermaid.stdout.components(separatedBy: "-->").count - 1, 5)

    let list = try CLI.run(["nodes"], env: env, cwd: scratch.path)
    XCTAssertTrue(list.stdout.contains("toy.slow  (a:int) -> (out:int)"), list.stdout)
    let one = try CLI.run(["nodes", "toy.div"], env: env, cwd: scratch.path)
    XCTAssertTrue(one.stdout.contains("divisor: int = 1 in [1, ∞] — divisor"), one.stdout)
    let missing = try CLI.run(["nodes", "toy.nope"], env: env, cwd: scratch.path)
    XCTAssertEqual(missing.status, 2)
  }
}
