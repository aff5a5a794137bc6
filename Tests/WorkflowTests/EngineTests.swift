import Foundation
import XCTest

@testable import Workflow

final class EngineTests: XCTestCase {
  /// A chain with a side branch; `counter` nodes log each run to `runs.log`.
  func chain(_ dir: TempDir, x: Int = 10, divisor: Int = 4) -> String {
    dir.write(
      "chain.yaml",
      """
      cogflow: 1
      name: chain
      params:
        x: \(x)
      nodes:
        src:  { type: toy.counter, with: { value: $x, log: \(dir.path("runs.log")) } }
        half: { type: toy.div, in: { a: src.out }, with: { divisor: \(divisor) } }
        post: { type: toy.counter, in: { a: half.out }, with: { value: 100, log: \(dir.path("runs.log")) } }
        side: { type: toy.counter, with: { value: 7, log: \(dir.path("runs.log")) } }
      """)
  }

  func runs(_ dir: TempDir) -> [String] { dir.lines("runs.log").map { String($0.split(separator: " ")[0]) } }

  func testSecondRunIsFullyCachedAndResultsAreRight() throws {
    let dir = TempDir()
    let cache = try DiskCache(root: dir.url.appendingPathComponent("cache"))
    let wf = try resolve(chain(dir))
    let first = runEngine(wf, cache: cache)
    XCTAssertTrue(first.succeeded)
    XCTAssertEqual(first.count(.ran), 4)
    XCTAssertEqual(try intOutput(first, "post", cache: cache), 10 / 4 + 100)
    let log = EventLog()
    let second = runEngine(wf, cache: cache, log: log)
    XCTAssertEqual(second.count(.cached), 4)
    XCTAssertEqual(log.nodes(.nodeCached), ["half", "post", "side", "src"])
    XCTAssertEqual(log.nodes(.nodeStart), [])
    XCTAssertEqual(runs(dir).sorted(), ["post", "side", "src"])
    XCTAssertEqual(second.keys, first.keys)
  }

  func testChangedParameterRerunsOnlyWhatDependsOnIt() throws {
    let dir = TempDir()
    let cache = try DiskCache(root: dir.url.appendingPathComponent("cache"))
    let path = chain(dir)
    _ = runEngine(try resolve(path), cache: cache)
    let second = runEngine(try resolve(path, ResolveOptions(overrides: ["post.value=200"])), cache: cache)
    XCTAssertEqual(second.outcomes["post"], .ran)
    XCTAssertEqual(second.outcomes["src"], .cached)
    XCTAssertEqual(second.outcomes["half"], .cached)
    XCTAssertEqual(second.outcomes["side"], .cached)
    XCTAssertEqual(try intOutput(second, "post", cache: cache), 202)
  }

  /// src changes (10 → 11) but half = x / 4 stays 2: post keeps its key and is not recomputed.
  func testEarlyCutoff() throws {
    let dir = TempDir()
    let cache = try DiskCache(root: dir.url.appendingPathComponent("cache"))
    let path = chain(dir)
    let first = runEngine(try resolve(path), cache: cache)
    let log = EventLog()
    let second = runEngine(try resolve(path, ResolveOptions(overrides: ["x=11"])), cache: cache, log: log)
    XCTAssertEqual(second.outcomes["src"], .ran)
    XCTAssertEqual(second.outcomes["half"], .ran)
    XCTAssertEqual(second.outcomes["post"], .cached, "identical bytes upstream keep the dependent cached")
    XCTAssertEqual(second.keys["post"], first.keys["post"])
    XCTAssertNotEqual(second.keys["half"], first.keys["half"])
    XCTAssertEqual(runs(dir).filter { $0 == "post" }.count, 1)
  }

  func testKeysIgnoreNodeIdsAndAreSharedAcrossWorkflows() throws {
    let dir = TempDir()
    let cache = try DiskCache(root: dir.url.appendingPathComponent("cache"))
    let a = dir.write("a.yaml", "cogflow: 1\nnodes:\n  first: { type: toy.add, with: { value: 5 } }\n")
    let b = dir.write("b.yaml", "cogflow: 1\nnodes:\n  other: { type: toy.add, with: { value: 5 } }\n")
    let ra = runEngine(try resolve(a), cache: cache)
    let rb = runEngine(try resolve(b), cache: cache)
    XCTAssertEqual(ra.keys["first"], rb.keys["other"])
    XCTAssertEqual(rb.outcomes["other"], .cached)
  }

  func testKeyDependsOnTypeVersionParamsAndInputs() {
    let base = KeyParts(type: "t", version: 1, params: ["a": "1"], inputs: ["x": "int:abc"], files: [:])
    var other = base
    XCTAssertEqual(base.key, other.key)
    other.version = 2
    XCTAssertNotEqual(base.key, other.key)
    other = base
    other.params["a"] = "2"
    XCTAssertNotEqual(base.key, other.key)
    other = base
    other.inputs["x"] = "int:abd"
    XCTAssertNotEqual(base.key, other.key)
    other = base
    other.type = "u"
    XCTAssertNotEqual(base.key, other.key)
    other = base
    other.files["m"] = "d"
    XCTAssertNotEqual(base.key, other.key)
  }

  func testFailureStopsDependentsButNotIndependentBranches() throws {
    let dir = TempDir()
    let cache = try DiskCache(root: dir.url.appendingPathComponent("cache"))
    let path = dir.write(
      "f.yaml",
      """
      cogflow: 1
      nodes:
        bad:  { type: toy.fail, with: { message: "disk on fire" } }
        after: { type: toy.add, in: { a: bad.out } }
        later: { type: toy.add, in: { a: after.out } }
        good: { type: toy.slow, with: { steps: 3, ms: 30 } }
        good2: { type: toy.add, in: { a: good.out }, with: { value: 1 } }
      """)
    let log = EventLog()
    let result = runEngine(try resolve(path), cache: cache, log: log)
    XCTAssertFalse(result.succeeded)
    XCTAssertEqual(result.outcomes["bad"], .failed)
    XCTAssertEqual(result.outcomes["after"], .skipped)
    XCTAssertEqual(result.outcomes["later"], .skipped)
    XCTAssertEqual(result.outcomes["good"], .ran)
    XCTAssertEqual(result.outcomes["good2"], .ran)
    XCTAssertEqual(result.errors, ["node 'bad' (toy.fail) failed: disk on fire"])
    let failed = log.events.filter { $0.kind == .nodeFailed }
    XCTAssertEqual(failed.map(\.node), ["bad"])
    XCTAssertEqual(failed.first?.type, "toy.fail")
    XCTAssertEqual(failed.first?.error, "disk on fire")
    // The independent branch is cached.
    let again = runEngine(try resolve(path), cache: cache)
    XCTAssertEqual(again.outcomes["good"], .cached)
    XCTAssertEqual(again.outcomes["good2"], .cached)
    XCTAssertEqual(again.outcomes["bad"], .failed)
  }

  func testCancellationKeepsFinishedNodesAndStoresNothingPartial() throws {
    let dir = TempDir()
    let cache = try DiskCache(root: dir.url.appendingPathComponent("cache"))
    let path = dir.write(
      "c.yaml",
      """
      cogflow: 1
      nodes:
        quick: { type: toy.add, with: { value: 1 } }
        long:  { type: toy.slow, in: { a: quick.out }, with: { steps: 200, ms: 10 } }
        after: { type: toy.add, in: { a: long.out } }
      """)
    let wf = try resolve(path)
    var options = EngineOptions()
    let log = EventLog()
    let token = options.cancellation
    options.cancellation = token
    DispatchQueue.global().async {
      // Cancel once the slow node has reported progress.
      while !log.events.contains(where: { $0.kind == .progress }) { usleep(2000) }
      token.cancel()
    }
    let result = runEngine(wf, cache: cache, options: options, log: log)
    XCTAssertTrue(result.cancelled)
    XCTAssertEqual(result.outcomes["quick"], .ran)
    XCTAssertEqual(result.outcomes["long"], .cancelled)
    XCTAssertEqual(result.outcomes["after"], .cancelled)
    let steps = log.events.filter { $0.kind == .progress }.count
    XCTAssertLessThan(steps, 200, "the slow node stopped at a progress point")
    let plan = Engine(workflow: wf, registry: toyRegistry, cache: cache).plan()
    XCTAssertEqual(plan.map(\.status), ["cached", "run", "run"])
    XCTAssertEqual(cache.stats().entries, 1)
  }

  func testIdenticalMatrixNodesComputeOnce() throws {
    let dir = TempDir()
    let cache = try DiskCache(root: dir.url.appendingPathComponent("cache"))
    let path = dir.write(
      "m.yaml",
      """
      cogflow: 1
      matrix:
        seed: [1, 2, 3]
      nodes:
        enc: { type: toy.counter, with: { value: 5, log: \(dir.path("runs.log")) } }
        smp: { type: toy.counter, in: { a: enc.out }, with: { value: $seed, log: \(dir.path("runs.log")) } }
        same: { type: toy.counter, in: { a: smp.out }, with: { value: 0, log: \(dir.path("runs.log")), ms: 0 }, foreach: { k: [1, 2] } }
      """)
    let wf = try resolve(path)
    // `same` varies over k but k is not used: its instances per seed share a key.
    XCTAssertEqual(wf.nodes.count, 1 + 3 + 6)
    let result = runEngine(wf, cache: cache)
    XCTAssertTrue(result.succeeded)
    XCTAssertEqual(runs(dir).filter { $0 == "enc" }.count, 1)
    XCTAssertEqual(runs(dir).filter { $0.hasPrefix("smp") }.count, 3)
    XCTAssertEqual(runs(dir).filter { $0.hasPrefix("same") }.count, 3, "\(runs(dir))")
    XCTAssertEqual(Set(wf.nodes.filter { $0.baseID == "same" }.map { result.keys[$0.id]! }).count, 3)
  }

  func testBranchesOverlapAndHeavyNodesAreSerialized() throws {
    let dir = TempDir()
    let log = dir.path("times.log")
    let path = dir.write(
      "p.yaml",
      """
      cogflow: 1
      nodes:
        h1: { type: toy.slow, with: { steps: 4, ms: 50, log: \(log) } }
        h2: { type: toy.slow, with: { steps: 4, ms: 50, log: \(log), tag: two } }
        i1: { type: toy.io, with: { ms: 150, log: \(log) } }
      """)
    var options = EngineOptions()
    options.jobs = 3
    let result = runEngine(
      try resolve(path), cache: nil,
      options: {
        var o = options
        o.useCache = false
        return o
      }())
    XCTAssertTrue(result.succeeded)
    var start: [String: Double] = [:]
    var end: [String: Double] = [:]
    for line in dir.lines("times.log") {
      let parts = line.split(separator: " ")
      let time = Double(parts[2])!
      if parts[0] == "start" { start[String(parts[1])] = time } else { end[String(parts[1])] = time }
    }
    // Heavy nodes never overlap each other.
    let heavyOverlap = start["h1"]! < end["h2"]! && start["h2"]! < end["h1"]!
    XCTAssertFalse(heavyOverlap, "two heavy nodes ran at once")
    // The I/O node overlaps with a heavy one.
    let ioOverlaps = ["h1", "h2"].contains { start[$0]! < end["i1"]! && start["i1"]! < end[$0]! }
    XCTAssertTrue(ioOverlaps, "the io node did not overlap a heavy node")

    // With --heavy-jobs 2 and jobs 3 both heavy nodes run at once.
    dir.write("times.log", "")
    var wide = options
    wide.heavyJobs = 2
    wide.useCache = false
    _ = runEngine(try resolve(path), cache: nil, options: wide)
    start = [:]
    end = [:]
    for line in dir.lines("times.log") {
      let parts = line.split(separator: " ")
      if parts[0] == "start" {
        start[String(parts[1])] = Double(parts[2])!
      } else {
        end[String(parts[1])] = Double(parts[2])!
      }
    }
    XCTAssertTrue(start["h1"]! < end["h2"]! && start["h2"]! < end["h1"]!, "heavyJobs 2 should let them overlap")
  }

  func testJobsOneRunsOneAtATime() throws {
    let dir = TempDir()
    let log = dir.path("times.log")
    let path = dir.write(
      "p.yaml",
      """
      cogflow: 1
      nodes:
        a: { type: toy.io, with: { ms: 40, log: \(log) } }
        b: { type: toy.io, with: { ms: 41, log: \(log) } }
        c: { type: toy.io, with: { ms: 42, log: \(log) } }
      """)
    var options = EngineOptions()
    options.jobs = 1
    options.useCache = false
    XCTAssertTrue(runEngine(try resolve(path), cache: nil, options: options).succeeded)
    let kinds = dir.lines("times.log").map { $0.split(separator: " ")[0] }
    XCTAssertEqual(kinds, ["start", "done", "start", "done", "start", "done"])
  }

  func testCorruptObjectIsDroppedAndRecomputed() throws {
    let dir = TempDir()
    let cache = try DiskCache(root: dir.url.appendingPathComponent("cache"))
    let path = chain(dir)
    let first = runEngine(try resolve(path), cache: cache)
    // Corrupt src's output object in place (same size).
    let record = try XCTUnwrap(cache.lookup(first.keys["src"]!)?.outputs["out"])
    let objectPath = cache.objectPath(record.digest)
    chmod(objectPath, 0o644)
    try Data(repeating: UInt8(ascii: "9"), count: record.size).write(to: URL(fileURLWithPath: objectPath))
    // half must run (new divisor) and reads src's bytes: the corruption is found, src recomputed.
    let log = EventLog()
    let second = runEngine(try resolve(path, ResolveOptions(overrides: ["half.divisor=5"])), cache: cache, log: log)
    XCTAssertTrue(second.succeeded, "\(second.errors)")
    XCTAssertEqual(try intOutput(second, "half", cache: cache), 10 / 5)
    XCTAssertEqual(log.events.filter { $0.kind == .cacheCorrupt }.count, 1)
    XCTAssertEqual(runs(dir).filter { $0 == "src" }.count, 2, "src was recomputed")
    XCTAssertEqual(try cache.getObject(record), Data("10".utf8), "the recomputed object is back")
  }

  func testAlwaysRunNodeRunsEachTimeButItsInputsAreCached() throws {
    let dir = TempDir()
    let cache = try DiskCache(root: dir.url.appendingPathComponent("cache"))
    let out = dir.path("out.txt")
    let path = dir.write(
      "w.yaml",
      """
      cogflow: 1
      nodes:
        v: { type: toy.counter, with: { value: 41, log: \(dir.path("runs.log")) } }
        w: { type: toy.write, in: { a: v.out }, with: { path: \(out) } }
      """)
    _ = runEngine(try resolve(path), cache: cache)
    try FileManager.default.removeItem(atPath: out)
    let second = runEngine(try resolve(path), cache: cache)
    XCTAssertEqual(second.outcomes["v"], .cached)
    XCTAssertEqual(second.outcomes["w"], .ran)
    XCTAssertEqual(try String(contentsOfFile: out, encoding: .utf8), "41\n")
  }

  func testFullyCachedRerunOpensNoModelFile() throws {
    let dir = TempDir()
    dir.write("models/big.bin", String(repeating: "x", count: 100_000))
    let path = dir.write(
      "m.yaml",
      """
      cogflow: 1
      models:
        big: models/big.bin
      nodes:
        m: { type: toy.model, with: { model: big, log: \(dir.path("opens.log")) } }
        n: { type: toy.add, in: { a: m.out } }
      """)
    let root = dir.url.appendingPathComponent("cache")
    let first = try DiskCache(root: root)
    XCTAssertTrue(runEngine(try resolve(path), cache: first).succeeded)
    XCTAssertEqual(first.filesHashed, 1)
    XCTAssertEqual(dir.lines("opens.log").count, 1)

    // A new process (new cache object): the digest comes from the remembered stamp, the node from the cache.
    let second = try DiskCache(root: root)
    let result = runEngine(try resolve(path), cache: second)
    XCTAssertEqual(result.count(.cached), 2)
    XCTAssertEqual(second.filesHashed, 0, "the model file was not read to hash it")
    XCTAssertEqual(dir.lines("opens.log").count, 1, "the model file was not opened by the node")

    // Changing the file (new size/mtime) makes it hashed again and the node rerun.
    dir.write("models/big.bin", String(repeating: "y", count: 100_001))
    let third = try DiskCache(root: root)
    let changed = runEngine(try resolve(path), cache: third)
    XCTAssertEqual(third.filesHashed, 1)
    XCTAssertEqual(changed.outcomes["m"], .ran)
  }

  func testPlanReasons() throws {
    let dir = TempDir()
    let cache = try DiskCache(root: dir.url.appendingPathComponent("cache"))
    let path = chain(dir)
    var plan = Engine(workflow: try resolve(path), registry: toyRegistry, cache: cache).plan()
    XCTAssertEqual(plan.map(\.status), ["run", "run", "run", "run"])
    XCTAssertEqual(plan[0].reason, "not in the cache (never run)")
    XCTAssertNil(plan[1].key, "half's key depends on src's output")
    _ = runEngine(try resolve(path), cache: cache)
    plan = Engine(workflow: try resolve(path), registry: toyRegistry, cache: cache).plan()
    XCTAssertEqual(plan.map(\.status), ["cached", "cached", "cached", "cached"])
    let wf = try resolve(path, ResolveOptions(overrides: ["half.divisor=3"]))
    plan = Engine(workflow: wf, registry: toyRegistry, cache: cache).plan()
    let byNode = Dictionary(uniqueKeysWithValues: plan.map { ($0.node, $0) })
    XCTAssertEqual(byNode["src"]?.status, "cached")
    XCTAssertEqual(byNode["half"]?.status, "run")
    XCTAssertEqual(byNode["half"]?.reason, "parameter divisor 4 → 3")
    XCTAssertEqual(byNode["post"]?.status, "run")
    XCTAssertNil(byNode["post"]?.key)
    XCTAssertTrue(byNode["post"]!.json.contains("\"key\":null"))
  }
}

final class NodeAPITests: XCTestCase {
  final class Box: @unchecked Sendable {
    var provenance: Provenance?
    var logs: [String] = []
  }

  /// A node sees the workflow, the overrides, its ancestors' keys and its model digest; its log lines become events.
  func testContextCarriesProvenanceAndLogs() throws {
    let dir = TempDir()
    dir.write("m.bin", "weights")
    let box = Box()
    let probe = ClosureNodeType(
      NodeTypeSpec(
        name: "probe", version: 3, inputs: [PortSpec("a", "int")], outputs: [PortSpec("out", "text")],
        params: [ParamSpec("model", .model)], resource: .io)
    ) { _, _, context in
      box.provenance = context.provenance
      context.log("hello from probe")
      return ["out": Artifact(text: "ok")]
    }
    var registry = toyRegistry
    registry.register(probe)
    let path = dir.write(
      "p.yaml",
      """
      cogflow: 1
      name: prov
      params: { v: 1 }
      models: { m: m.bin }
      nodes:
        up: { type: toy.add, with: { value: $v } }
        p: { type: probe, in: { a: up.out }, with: { model: m } }
      """)
    let wf = try WorkflowResolver.load(path: path, registry: registry, options: ResolveOptions(overrides: ["v=2"]))
    let log = EventLog()
    let result = Engine(
      workflow: wf, registry: registry, cache: nil,
      options: { () -> EngineOptions in
        var o = EngineOptions()
        o.useCache = false
        return o
      }()
    ) { log.add($0) }.run()
    XCTAssertTrue(result.succeeded, "\(result.errors)")
    let p = try XCTUnwrap(box.provenance)
    XCTAssertEqual(p.workflowName, "prov")
    XCTAssertEqual(p.overrides, ["v=2"])
    XCTAssertEqual(p.params["v"], .int(2))
    XCTAssertTrue(p.workflowSource.contains("type: probe"))
    XCTAssertEqual(p.nodeKeys["up"], result.keys["up"])
    XCTAssertEqual(p.fileDigests["model"]?.count, 64)
    XCTAssertEqual(p.engineVersion, Provenance.engineVersion)
    XCTAssertEqual(log.events.filter { $0.kind == .nodeLog }.map(\.message), ["hello from probe"])
  }

  func testWrongOutputsFailTheNode() throws {
    let dir = TempDir()
    let liar = ClosureNodeType(
      NodeTypeSpec(name: "liar", version: 1, outputs: [PortSpec("out", "int")])
    ) { _, _, _ in ["out": Artifact(text: "x", type: "text")] }
    let silent = ClosureNodeType(
      NodeTypeSpec(name: "silent", version: 1, outputs: [PortSpec("out", "int")])
    ) { _, _, _ in [:] }
    let registry = NodeRegistry([liar, silent])
    let path = dir.write("l.yaml", "cogflow: 1\nnodes:\n  a: { type: liar }\n  b: { type: silent }\n")
    let wf = try WorkflowResolver.load(path: path, registry: registry)
    let result = Engine(
      workflow: wf, registry: registry, cache: try DiskCache(root: dir.url.appendingPathComponent("c"))
    )
    .run()
    XCTAssertEqual(
      result.errors.sorted(),
      [
        "node 'a' (liar) failed: output 'out' has type text, declared int",
        "node 'b' (silent) failed: implementation returned no output 'out'",
      ])
  }

  func testInputConnectedTwiceIsAnError() {
    let dir = TempDir()
    let path = dir.write(
      "d.yaml", "cogflow: 1\nnodes:\n  a: { type: toy.add }\n  b: { type: toy.add, in: { a: a.out, a: a.out } }\n")
    XCTAssertEqual(
      diagnostics(path).map(\.description),
      ["\(path):4:39: error: node 'b': input 'a' connected twice (first at \(path):4:29)"])
  }
}

final class NodeSpecTests: XCTestCase {
  func testToySpecsAreSound() {
    for type in ToyNodes.all { XCTAssertEqual(type.spec.problems(), [], type.spec.name) }
  }

  func testSpecProblemsAreFound() {
    let spec = NodeTypeSpec(
      name: "bad", version: 0, inputs: [PortSpec("x", "int"), PortSpec("x", "int")], outputs: [PortSpec("a.b", "int")],
      params: [
        ParamSpec("n", .int, default: .float(1.5)),
        ParamSpec("r", .float, default: .float(5), min: 0, max: 1),
        ParamSpec("m", .choice(["a", "b"]), default: .string("c")),
        ParamSpec("w", .int, min: 3, max: 2),
      ])
    XCTAssertEqual(
      spec.problems(),
      [
        "bad: version must be at least 1",
        "bad: duplicate input 'x'",
        "bad: output 'a.b' is not a plain name",
        "bad: default 1.5 of 'n' is not int",
        "bad: default 5.0 of 'r' is outside its range",
        "bad: default \"c\" of 'm' is not one of a|b",
        "bad: parameter 'w' has min 3.0 > max 2.0",
      ])
  }
}
