import Foundation
import XCTest

@testable import Nodes
@testable import Workflow

/// prompt-expand inside the engine: caching, pass-through, key safety across everything stored or printed,
/// the concurrency bound and identical prompts asked once.
final class PromptExpandEngineTests: XCTestCase {
  static let secret = PromptExpandTests.secret

  /// Passes text on and remembers the provenance it was given (what save-image would embed).
  final class Sink: @unchecked Sendable {
    private let lock = NSLock()
    private var seen: [Provenance] = []
    var provenances: [Provenance] {
      lock.lock()
      defer { lock.unlock() }
      return seen
    }
    var node: ClosureNodeType {
      ClosureNodeType(
        NodeTypeSpec(
          name: "t.sink", version: 1, inputs: [PortSpec("text", "text")], outputs: [PortSpec("out", "text")],
          cachePolicy: .alwaysRun)
      ) { [self] inputs, _, context in
        lock.lock()
        seen.append(context.provenance)
        lock.unlock()
        return ["out": Artifact(text: try inputs.required("text").text)]
      }
    }
  }

  struct Run {
    var result: RunResult
    var events: [String]
    var plan: [String]
    var workflow: ResolvedWorkflow
  }

  func run(
    _ yaml: String, dir: ExpandTempDir, cache: DiskCache, environment: [String: String], sink: Sink = Sink(),
    jobs: Int? = nil
  ) throws -> Run {
    let registry = NodeRegistry([PromptExpandNode(environment: environment), sink.node])
    let path = dir.write("w.yaml", yaml)
    let wf = try WorkflowResolver.load(path: path, registry: registry)
    let log = EventLog()
    var options = EngineOptions()
    if let jobs { options.jobs = jobs }
    let engine = Engine(workflow: wf, registry: registry, cache: cache, options: options) { log.append($0) }
    let plan = engine.plan().map(\.json)
    let result = engine.run()
    return Run(result: result, events: log.all.map(\.jsonLine), plan: plan, workflow: wf)
  }

  func workflow(_ server: LLMTestServer, extra: String = "", prompt: String = "a red fox") -> String {
    """
    cogflow: 1
    nodes:
      expand: { type: prompt-expand, in: { text: { value: "\(prompt)" } }, with: { base-url: "\(server.baseURL)", model: test-model, retry-delay: 0.01\(extra) } }
      use: { type: t.sink, in: { text: expand.text } }
    """
  }

  /// Every file under `root`, read as bytes.
  func allBytes(under root: URL) -> [(String, Data)] {
    var out: [(String, Data)] = []
    let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)
    while let url = walker?.nextObject() as? URL {
      if let data = try? Data(contentsOf: url) { out.append((url.path, data)) }
    }
    return out
  }

  func testCachedRerunNeverCallsTheServerAndTheKeyIsNowhere() throws {
    let dir = ExpandTempDir()
    let cacheRoot = dir.url.appendingPathComponent("cache")
    let cache = try DiskCache(root: cacheRoot)
    let server = try LLMTestServer([
      "responses": [["kind": "status", "status": 500, "body": "internal error for key \(Self.secret)"]]
    ])
    let env = ["COGFLOW_LLM_KEY": Self.secret]
    let sink = Sink()
    let first = try run(workflow(server), dir: dir, cache: cache, environment: env, sink: sink)
    XCTAssertTrue(first.result.succeeded, "\(first.result.errors)")
    XCTAssertEqual(server.requests.count, 2, "one 500 (its body echoes the key), then success")
    let second = try run(
      workflow(server, extra: ", read-timeout: 5, max-concurrent: 1"), dir: dir, cache: cache, environment: env,
      sink: sink)
    XCTAssertEqual(second.result.outcomes["expand"], .cached, "settings outside the key change nothing")
    XCTAssertEqual(server.requests.count, 2, "a rerun never calls the server")
    XCTAssertTrue(second.plan.contains { $0.contains("\"node\":\"expand\"") && $0.contains("\"status\":\"cached\"") })

    // A 401 whose body echoes the key: the error must not.
    let denied = try LLMTestServer(["default": ["kind": "status", "status": 401, "body": "invalid key \(Self.secret)"]])
    let third = try run(workflow(denied, prompt: "other"), dir: dir, cache: cache, environment: env, sink: sink)
    XCTAssertFalse(third.result.succeeded)
    XCTAssertTrue(third.result.errors.joined().contains("[api key]"), "\(third.result.errors)")

    let needle = Data(Self.secret.utf8)
    for done in [first, second, third] {
      for line in done.events + done.plan + done.result.errors + Array(done.result.keys.values) {
        XCTAssertFalse(line.contains(Self.secret), "key leaked into: \(line)")
      }
    }
    for (path, data) in allBytes(under: cacheRoot) {
      XCTAssertNil(data.range(of: needle), "key leaked into cache file \(path)")
    }
    for provenance in sink.provenances {
      XCTAssertFalse(String(describing: provenance).contains(Self.secret), "key leaked into provenance")
    }
    let spec = PromptExpandNode(environment: env).spec
    XCTAssertFalse(String(describing: spec).contains(Self.secret), "key leaked into the node spec (cogflow nodes)")
    XCTAssertTrue(
      first.events.contains { $0.contains("[api key]") && $0.contains("node-log") }, "the retry was logged, redacted")
  }

  func testPassThroughIsMarkedNotCachedAndRetriedNextRun() throws {
    let dir = ExpandTempDir()
    let cache = try DiskCache(root: dir.url.appendingPathComponent("cache"))
    let server = try LLMTestServer(["responses": [["kind": "status", "status": 503, "body": "down"]]])
    let sink = Sink()
    let yaml = workflow(server, extra: ", on-failure: passthrough, retries: 0")
    let first = try run(yaml, dir: dir, cache: cache, environment: [:], sink: sink)
    XCTAssertTrue(first.result.succeeded, "\(first.result.errors)")
    XCTAssertEqual(first.result.notCached.keys.sorted(), ["expand"])
    XCTAssertTrue(first.result.notCached["expand"]?.contains("HTTP 503") ?? false)
    XCTAssertTrue(first.events.contains { $0.contains("node-done") && $0.contains("not cached: pass-through") })
    XCTAssertEqual(sink.provenances.last?.notCached.keys.sorted(), ["expand"], "listed in the provenance")
    XCTAssertNil(cache.lookup(first.result.keys["expand"] ?? ""), "never cached as an expansion")

    let second = try run(yaml, dir: dir, cache: cache, environment: [:], sink: sink)
    XCTAssertEqual(second.result.outcomes["expand"], .ran, "the next run tries again")
    XCTAssertTrue(second.result.notCached.isEmpty)
    XCTAssertTrue(sink.provenances.last?.notCached.isEmpty ?? false)
    XCTAssertEqual(server.requests.count, 2)
    let third = try run(yaml, dir: dir, cache: cache, environment: [:], sink: sink)
    XCTAssertEqual(third.result.outcomes["expand"], .cached)
    XCTAssertEqual(server.requests.count, 2)
  }

  func testModeOffStoresNothing() throws {
    let dir = ExpandTempDir()
    let cache = try DiskCache(root: dir.url.appendingPathComponent("cache"))
    let server = try LLMTestServer([:])
    let result = try run(workflow(server, extra: ", mode: off"), dir: dir, cache: cache, environment: [:]).result
    XCTAssertTrue(result.succeeded)
    XCTAssertNil(cache.lookup(result.keys["expand"] ?? ""))
    XCTAssertEqual(server.requests.count, 0)
  }

  func testMatrixRespectsTheConcurrencyBoundAndAsksIdenticalPromptsOnce() throws {
    let dir = ExpandTempDir()
    let cache = try DiskCache(root: dir.url.appendingPathComponent("cache"))
    let server = try LLMTestServer(["default": ["kind": "ok", "content": "expanded: {prompt}", "delay": 0.3]])
    let with = "{ base-url: \"\(server.baseURL)\", model: test-model, max-concurrent: 2 }"
    let yaml = """
      cogflow: 1
      matrix:
        p: [fox, owl, cat, dog, elk, yak]
      nodes:
        expand: { type: prompt-expand, in: { text: $p }, with: \(with) }
        again: { type: prompt-expand, in: { text: { value: fox } }, with: \(with) }
        also: { type: prompt-expand, in: { text: { value: owl } }, with: \(with) }
      """
    let out = try run(yaml, dir: dir, cache: cache, environment: [:], jobs: 8)
    XCTAssertTrue(out.result.succeeded, "\(out.result.errors)")
    XCTAssertEqual(out.workflow.nodes.count, 8)
    let requests = server.requests
    XCTAssertEqual(requests.count, 6, "identical prompts are asked once")
    let prompts = requests.compactMap {
      (($0["body"] as? [String: Any])?["messages"] as? [[String: String]])?.last?["content"]
    }
    XCTAssertEqual(Set(prompts).count, 6)
    let peak = requests.compactMap { $0["in_flight"] as? Int }.max() ?? 0
    XCTAssertLessThanOrEqual(peak, 2, "max-concurrent 2 respected")
    XCTAssertEqual(peak, 2, "and used: requests did overlap")
  }
}
