import Foundation
import XCTest

/// `cogflow run` of the ready workflows on the tiny model set (Tests/Fixtures/tiny-cogview3), through the binary.
final class WorkflowRunTests: XCTestCase {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
  static let tiny = root.appendingPathComponent("Tests/Fixtures/tiny-cogview3").path

  func folder() throws -> String {
    guard FileManager.default.fileExists(atPath: Self.tiny + "/cogview3-base/latest") else {
      throw XCTSkip("the tiny model set Tests/Fixtures/tiny-cogview3 is not present")
    }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cogflow-cli-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
  }

  func testRunRelay1024WithModelsWritesThePNGAndRerunIsCached() throws {
    let dir = try folder()
    let args = [
      "run", Self.root.appendingPathComponent("Workflows/relay-1024.yaml").path, "--models", Self.tiny,
      "--set", "size=64", "--set", "base_steps=2", "--set", "relay_steps=1", "--set", "relay_grid=2", "--quiet",
    ]
    let env = CLI.environment(cache: dir + "/cache")
    let first = try CLI.run(args, env: env, cwd: dir)
    XCTAssertEqual(first.status, 0, first.stderr)
    XCTAssertTrue(
      FileManager.default.fileExists(atPath: dir + "/out/relay-1024-0.png"), "relative to the current folder")

    let again = try CLI.run(args + ["--events", "-"], env: env, cwd: dir)
    XCTAssertEqual(again.status, 0, again.stderr)
    let started = again.stdout.split(separator: "\n").filter { $0.contains("\"event\":\"node-start\"") }
    XCTAssertEqual(started.count, 1, "only save-image runs: \(started)")
    XCTAssertTrue(started.first?.contains("\"save\"") ?? false)
  }

  func testValidateReportsAWrongModelWithExitStatus2() throws {
    let dir = try folder()
    let file = dir + "/wrong.yaml"
    try """
    cogflow: 1
    include: \(Self.root.appendingPathComponent("Workflows/base-512.yaml").path)
    models: { base: cogview3-base-3b-vae/sdxl_vae.safetensors }
    """.write(toFile: file, atomically: true, encoding: .utf8)
    let result = try CLI.run(
      ["validate", file, "--models", Self.tiny], env: CLI.environment(cache: dir + "/c"), cwd: dir)
    XCTAssertEqual(result.status, 2)
    XCTAssertTrue(result.stderr.contains("node 'base' (base-sample): model"), result.stderr)
    XCTAssertTrue(result.stderr.contains("expected a CogView3 UNet"), result.stderr)
  }
}
