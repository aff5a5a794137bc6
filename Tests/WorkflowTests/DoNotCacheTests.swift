import Foundation
import XCTest

@testable import Workflow

/// `NodeContext.doNotCache`, `ParamSpec.affectsKey` and optional `file` parameters (empty default).
final class DoNotCacheTests: XCTestCase {
  /// Counts runs and remembers what the sink saw, across the engine's threads.
  final class Record: @unchecked Sendable {
    private let lock = NSLock()
    private var runs: [String: Int] = [:]
    private var seen: [String: String] = [:]
    func ran(_ node: String) {
      lock.lock()
      runs[node, default: 0] += 1
      lock.unlock()
    }
    func count(_ node: String) -> Int {
      lock.lock()
      defer { lock.unlock() }
      return runs[node] ?? 0
    }
    func saw(_ notCached: [String: String]) {
      lock.lock()
      seen = notCached
      lock.unlock()
    }
    var sinkSaw: [String: String] {
      lock.lock()
      defer { lock.unlock() }
      return seen
    }
  }

  func registry(_ record: Record) -> NodeRegistry {
    let maybe = ClosureNodeType(
      NodeTypeSpec(
        name: "t.maybe", version: 1, inputs: [PortSpec("text", "text")], outputs: [PortSpec("out", "text")],
        params: [
          ParamSpec("store", .bool, default: .bool(true)),
          ParamSpec("timeout", .float, default: .float(1), affectsKey: false),
          ParamSpec("extra", .file, default: .string("")),
        ])
    ) { inputs, params, context in
      record.ran(context.node)
      if try !params.bool("store") { context.doNotCache("fallback used") }
      let extra = try params.files["extra"].map { try String(contentsOfFile: $0, encoding: .utf8) } ?? ""
      return ["out": Artifact(text: try inputs.required("text").text + extra)]
    }
    let sink = ClosureNodeType(
      NodeTypeSpec(
        name: "t.sink", version: 1, inputs: [PortSpec("text", "text")], outputs: [PortSpec("out", "text")])
    ) { inputs, _, context in
      record.ran(context.node)
      record.saw(context.provenance.notCached)
      return ["out": Artifact(text: try inputs.required("text").text)]
    }
    return NodeRegistry([maybe, sink])
  }

  func run(_ path: String, _ registry: NodeRegistry, _ cache: DiskCache, _ log: EventLog = EventLog()) throws
    -> RunResult
  {
    let wf = try WorkflowResolver.load(path: path, registry: registry)
    return Engine(workflow: wf, registry: registry, cache: cache) { log.add($0) }.run()
  }

  /// A temporary folder with a cache, a fresh record and the test registry.
  func fixture() throws -> (dir: TempDir, cache: DiskCache, record: Record, registry: NodeRegistry) {
    let dir = TempDir()
    let record = Record()
    return (dir, try DiskCache(root: dir.url.appendingPathComponent("cache")), record, registry(record))
  }

  func testNotStoredButPassedOnMarkedAndRecomputedNextRun() throws {
    let (dir, cache, record, reg) = try fixture()
    let path = dir.write(
      "w.yaml",
      """
      cogflow: 1
      nodes:
        a: { type: t.maybe, in: { text: { value: x } }, with: { store: false } }
        b: { type: t.sink, in: { text: a.out } }
      """)
    let log = EventLog()
    let first = try run(path, reg, cache, log)
    XCTAssertTrue(first.succeeded, "\(first.errors)")
    XCTAssertEqual(first.notCached, ["a": "fallback used"])
    XCTAssertEqual(record.sinkSaw, ["a": "fallback used"], "the provenance of what follows lists it")
    let done = log.events.first { $0.kind == .nodeDone && $0.node == "a" }
    XCTAssertEqual(done?.message, "not cached: fallback used")
    XCTAssertTrue(done?.jsonLine.contains("not cached: fallback used") ?? false)
    XCTAssertNil(cache.lookup(first.keys["a"] ?? ""), "a's outputs were not stored")
    XCTAssertNotNil(cache.lookup(first.keys["b"] ?? ""), "b (computed from them) was")

    let second = try run(path, reg, cache)
    XCTAssertEqual(second.outcomes["a"], .ran, "not stored, so asked again")
    XCTAssertEqual(second.outcomes["b"], .cached)
    XCTAssertEqual(record.count("a"), 2)
    XCTAssertEqual(record.count("b"), 1)
  }

  func testIdenticalNodeSharesTheMark() throws {
    let (dir, cache, record, reg) = try fixture()
    let path = dir.write(
      "w.yaml",
      """
      cogflow: 1
      nodes:
        a1: { type: t.maybe, in: { text: { value: x } }, with: { store: false } }
        a2: { type: t.maybe, in: { text: { value: x } }, with: { store: false } }
      """)
    let result = try run(path, reg, cache)
    XCTAssertTrue(result.succeeded)
    XCTAssertEqual(record.count("a1") + record.count("a2"), 1, "one key, computed once")
    XCTAssertEqual(Set(result.notCached.keys), ["a1", "a2"])
  }

  func testParameterOutsideTheKeyAndOptionalFile() throws {
    let (dir, cache, _, reg) = try fixture()
    func write(_ timeout: String, extra: String?) -> String {
      dir.write(
        "w.yaml",
        """
        cogflow: 1
        nodes:
          a: { type: t.maybe, in: { text: { value: x } }, with: { timeout: \(timeout)\(extra.map { ", extra: \($0)" } ?? "") } }
        """)
    }
    let first = try run(write("1.5", extra: nil), reg, cache)
    XCTAssertEqual(first.outcomes["a"], .ran)
    let second = try run(write("30.5", extra: nil), reg, cache)
    XCTAssertEqual(second.outcomes["a"], .cached, "timeout is not in the key")
    XCTAssertEqual(first.keys["a"], second.keys["a"])

    dir.write("extra.txt", "1")
    let third = try run(write("1.5", extra: "extra.txt"), reg, cache)
    XCTAssertEqual(third.outcomes["a"], .ran, "a given file enters the key")
    dir.write("extra.txt", "22")
    let fourth = try run(write("1.5", extra: "extra.txt"), reg, cache)
    XCTAssertEqual(fourth.outcomes["a"], .ran, "its content enters the key")
    XCTAssertEqual(Set([first.keys["a"], third.keys["a"], fourth.keys["a"]]).count, 3)
  }
}
