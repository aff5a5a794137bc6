import Foundation
import XCTest

@testable import Nodes
@testable import Workflow

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// Opt-in: prompt-expand against a real peer, llama.cpp's OpenAI-compatible server (PyPI `llama-cpp-python`,
/// module `llama_cpp.server`) serving a tiny random-weight GGUF that Tests/tools/llm_make_tiny_gguf.py writes.
/// Run with
///   COGFLOW_LLAMA_TEST=1 COGFLOW_LLAMA_PYTHON=/path/to/venv/bin/python \
///     swift test -c release -Xswiftc -enable-testing --filter PromptExpandLlamaTests
/// where that Python has `llama-cpp-python[server]` (0.3.36 used) and `gguf` (0.19.0); see Tests/tools/README.md.
final class PromptExpandLlamaTests: XCTestCase {
  var server: Process?

  override func tearDown() {
    if let server, server.isRunning {
      server.terminate()
      server.waitUntilExit()
    }
    server = nil
  }

  func shell(_ python: String, _ arguments: [String]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
      throw XCTSkip("\(python) \(arguments.joined(separator: " ")) failed (status \(process.terminationStatus))")
    }
    return String(decoding: data, as: UTF8.self)
  }

  func testAgainstLlamaCppServer() throws {
    let env = ProcessInfo.processInfo.environment
    guard env["COGFLOW_LLAMA_TEST"] == "1" else {
      throw XCTSkip(
        "opt-in: set COGFLOW_LLAMA_TEST=1 and COGFLOW_LLAMA_PYTHON to a Python with llama-cpp-python[server] and"
          + " gguf (building llama-cpp-python from source takes tens of minutes)")
    }
    let python = env["COGFLOW_LLAMA_PYTHON"] ?? "/usr/bin/python3"
    let dir = ExpandTempDir()
    let model = dir.path("tiny.gguf")
    _ = try shell(python, [expandRepoRoot.appendingPathComponent("Tests/tools/llm_make_tiny_gguf.py").path, model])
    let portText = try shell(
      python, ["-c", "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"])
    let port = try XCTUnwrap(Int(portText.trimmingCharacters(in: .whitespacesAndNewlines)))

    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = [
      "-m", "llama_cpp.server", "--model", model, "--model_alias", "tiny", "--host", "127.0.0.1", "--port",
      String(port), "--n_ctx", "8192", "--chat_format", "chatml",
    ]
    process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
    process.standardError = FileHandle(forWritingAtPath: "/dev/null")
    try process.run()
    server = process

    // Wait until /v1/models answers (loading is quick for a tiny model, but Python starts slowly).
    let models = try XCTUnwrap(URL(string: "http://127.0.0.1:\(port)/v1/models"))
    let deadline = Date().addingTimeInterval(180)
    var ready = false
    while !ready && Date() < deadline && process.isRunning {
      let done = DispatchSemaphore(value: 0)
      final class Flag: @unchecked Sendable { var ok = false }
      let flag = Flag()
      URLSession.shared.dataTask(with: models) { _, response, _ in
        flag.ok = (response as? HTTPURLResponse)?.statusCode == 200
        done.signal()
      }.resume()
      _ = done.wait(timeout: .now() + 5)
      ready = flag.ok
      if !ready { Thread.sleep(forTimeInterval: 0.5) }
    }
    XCTAssertTrue(ready, "llama_cpp.server did not come up on port \(port)")
    guard ready else { return }

    // Random weights write noise: the answer ends (EOS), runs into max-tokens or is blank. Each is a full
    // round trip through the protocol; anything else (HTTP, JSON, content type) is a failure.
    let with: [String: Value] = [
      "base-url": .string("http://127.0.0.1:\(port)/v1"), "model": .string("tiny"),
      "seed": .int(1), "read-timeout": .float(120), "retries": .int(0),
    ]
    do {
      let out = try runExpand("a red fox", with: with)
      XCTAssertFalse(out.text.isEmpty)
      print("llama.cpp peer: expansion of \(out.text.count) characters")
    } catch let error as PromptExpandError {
      let message = "\(error)"
      XCTAssertTrue(
        message.contains("cut at max-tokens 300 (finish_reason length)") || message.contains("empty expansion"),
        message)
      print("llama.cpp peer: \(message)")
    }

    // A short template (the `template:` override): this tiny model then ends its answer, so the whole path to a
    // cleaned expansion runs, and the seeded request gives the same text twice.
    let template = dir.write("short.json", #"{"system": "Be brief.", "user_template": "{prompt}"}"#)
    let first = try runExpand("a red fox", with: with, template: template)
    let second = try runExpand("a red fox", with: with, template: template)
    XCTAssertFalse(first.text.isEmpty)
    XCTAssertEqual(first.text, second.text, "seed 1 at temperature 0.01 repeats")
    XCTAssertNil(first.notCached)
    print("llama.cpp peer, short template: \(first.text.debugDescription)")
  }
}
