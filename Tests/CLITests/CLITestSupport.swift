import Foundation
import XCTest

/// Runs the built `cogflow` binary (it sits next to the test bundle in .build/<config>/).
enum CLI {
  static let binary: String = {
    let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
      .appendingPathComponent("cogflow").path
    if FileManager.default.isExecutableFile(atPath: besideTests) { return besideTests }
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    for config in ["release", "debug"] {
      let path = root.appendingPathComponent(".build/\(config)/cogflow").path
      if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return besideTests
  }()

  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/workflow")

  struct Output {
    var status: Int32
    var stdout: String
    var stderr: String
  }

  static func environment(cache: String, extra: [String: String] = [:]) -> [String: String] {
    var env = ProcessInfo.processInfo.environment
    env["COGFLOW_TOY_NODES"] = "1"
    env["COGFLOW_CACHE"] = cache
    env.removeValue(forKey: "COGFLOW_DEBUG_SLOW_WRITE_MS")
    for (k, v) in extra { env[k] = v }
    return env
  }

  /// Starts the binary with stdout/stderr going to files (no pipe buffers to fill).
  static func start(_ args: [String], env: [String: String], cwd: String, outputs: String) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = args
    process.environment = env
    process.currentDirectoryURL = URL(fileURLWithPath: cwd)
    _ = FileManager.default.createFile(atPath: outputs + ".out", contents: nil)
    _ = FileManager.default.createFile(atPath: outputs + ".err", contents: nil)
    process.standardOutput = FileHandle(forWritingAtPath: outputs + ".out")
    process.standardError = FileHandle(forWritingAtPath: outputs + ".err")
    try process.run()
    return process
  }

  static func run(_ args: [String], env: [String: String], cwd: String) throws -> Output {
    let base = cwd + "/.cli-\(UUID().uuidString)"
    let process = try start(args, env: env, cwd: cwd, outputs: base)
    process.waitUntilExit()
    defer {
      try? FileManager.default.removeItem(atPath: base + ".out")
      try? FileManager.default.removeItem(atPath: base + ".err")
    }
    return Output(
      status: process.terminationStatus,
      stdout: (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "",
      stderr: (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? "")
  }

  static func waitFor(timeout: Double = 20, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      if condition() { return true }
      usleep(5000)
    }
    return false
  }
}

final class Scratch {
  let path: String
  init() {
    path = FileManager.default.temporaryDirectory.appendingPathComponent("cogflow-cli-\(UUID().uuidString)").path
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }
  deinit { try? FileManager.default.removeItem(atPath: path) }

  var cache: String { path + "/cache" }

  @discardableResult
  func write(_ name: String, _ text: String) -> String {
    let p = path + "/" + name
    try? text.write(toFile: p, atomically: true, encoding: .utf8)
    return p
  }

  func read(_ name: String) -> String { (try? String(contentsOfFile: path + "/" + name, encoding: .utf8)) ?? "" }

  func lines(_ name: String) -> [String] { read(name).split(separator: "\n").map(String.init) }
}

func jsonObjects(_ text: String) -> [[String: Any]] {
  text.split(separator: "\n").compactMap {
    (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
  }
}
