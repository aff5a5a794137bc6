import Foundation
import XCTest

@testable import Nodes
@testable import Workflow

/// The repository root.
let expandRepoRoot = Paths.root

/// A temporary folder per test, removed afterwards.
final class ExpandTempDir {
  let url: URL
  init() {
    url = FileManager.default.temporaryDirectory.appendingPathComponent("cogflow-expand-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  }
  deinit { try? FileManager.default.removeItem(at: url) }
  func path(_ name: String) -> String { url.appendingPathComponent(name).path }
  @discardableResult
  func write(_ name: String, _ text: String) -> String {
    let p = path(name)
    try? text.write(toFile: p, atomically: true, encoding: .utf8)
    return p
  }
}

struct ServerDidNotStart: Error, CustomStringConvertible {
  var description: String { "Tests/tools/llm_test_server.py did not start listening within 60 s" }
}

/// The scripted chat server of Tests/tools/llm_test_server.py, started on a free loopback port and stopped
/// (terminated and reaped) by `stop()` or when released.
final class LLMTestServer {
  let process = Process()
  let dir = ExpandTempDir()
  private(set) var port = 0

  /// Starts the server with `script` ({"responses": [...], "default": {...}}); waits until it listens.
  init(_ script: [String: Any]) throws {
    let python = ["/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"].first {
      FileManager.default.isExecutableFile(atPath: $0)
    }
    guard let python else { throw XCTSkip("python3 not found: the loopback prompt-expand tests need it") }
    let scriptPath = dir.path("script.json")
    try JSONSerialization.data(withJSONObject: script).write(to: URL(fileURLWithPath: scriptPath))
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = [
      expandRepoRoot.appendingPathComponent("Tests/tools/llm_test_server.py").path, "--script", scriptPath,
      "--port-file", dir.path("port"), "--log", dir.path("log.jsonl"),
    ]
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    // Python starts slowly on a loaded machine: wait up to 60 s for the port file.
    let deadline = Date().addingTimeInterval(60)
    while Date() < deadline {
      if let text = try? String(contentsOfFile: dir.path("port"), encoding: .utf8), let p = Int(text) {
        port = p
        return
      }
      if !process.isRunning { break }
      Thread.sleep(forTimeInterval: 0.05)
    }
    stop()
    throw ServerDidNotStart()
  }

  deinit { stop() }

  func stop() {
    if process.isRunning {
      process.terminate()
      process.waitUntilExit()
    }
  }

  var baseURL: String { "http://127.0.0.1:\(port)/v1" }

  /// The requests the server received, in the order they finished.
  var requests: [[String: Any]] {
    let text = (try? String(contentsOfFile: dir.path("log.jsonl"), encoding: .utf8)) ?? ""
    return text.split(separator: "\n").compactMap {
      (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
    }
  }

  /// Waits (up to `seconds`) until the server has logged `count` requests.
  func waitForRequests(_ count: Int, seconds: Double = 10) -> [[String: Any]] {
    let deadline = Date().addingTimeInterval(seconds)
    while requests.count < count && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
    return requests
  }
}

/// A node's log lines.
typealias ExpandLog = LockedList<String>

/// Runs the node directly (no engine) with the spec's defaults plus `with`.
func runExpand(
  _ prompt: String, with: [String: Value], environment: [String: String] = [:], template: String? = nil,
  cancellation: CancellationToken = CancellationToken(), log: ExpandLog = ExpandLog()
) throws -> (text: String, notCached: String?) {
  let node = PromptExpandNode(environment: environment)
  var values: [String: Value] = [:]
  for param in node.spec.params { values[param.name] = param.defaultValue }
  for (name, value) in with { values[name] = value }
  let params = NodeParams(values, files: template.map { ["template": $0] } ?? [:])
  let context = NodeContext(
    node: "expand", type: "prompt-expand", key: "k", cancellation: cancellation, onLog: { log.append($0) })
  let out = try node.run(inputs: NodeInputs(["text": Artifact(text: prompt)]), params: params, context: context)
  return (out["text"]?.text ?? "", context.doNotCacheNote)
}
