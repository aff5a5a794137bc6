import Foundation
import XCTest

/// `cogflow inspect` end to end: a SAT folder, JSON output, and refusals of bad files with exit 1.
final class InspectCLITests: XCTestCase {
  let modelio = CLI.fixtures.deletingLastPathComponent().appendingPathComponent("modelio")

  func run(_ args: [String]) throws -> CLI.Output {
    let scratch = Scratch()
    return try CLI.run(args, env: ProcessInfo.processInfo.environment, cwd: scratch.path)
  }

  func testSATFolderSummary() throws {
    let out = try run(["inspect", modelio.appendingPathComponent("sat").path])
    XCTAssertEqual(out.status, 0, out.stderr)
    XCTAssertTrue(out.stdout.contains("format: sat-folder"), out.stdout)
    XCTAssertTrue(out.stdout.contains("state dict under 'module'"), out.stdout)
    XCTAssertTrue(out.stdout.contains("ignored: conditioner."), out.stdout)
  }

  func testJSONIsAnObjectWithFormatAndCounts() throws {
    let out = try run(["inspect", modelio.appendingPathComponent("plain.safetensors").path, "--json"])
    XCTAssertEqual(out.status, 0, out.stderr)
    let object = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any]
    XCTAssertEqual(object?["format"] as? String, "safetensors")
    XCTAssertEqual((object?["dtypes"] as? [String: Int])?["F32"], 3)
  }

  func testMaliciousPickleIsRefusedNamingTheGlobal() throws {
    let out = try run(["inspect", modelio.appendingPathComponent("bad/evil_system.pt").path])
    XCTAssertEqual(out.status, 1)
    XCTAssertTrue(out.stderr.contains("system"), out.stderr)
    XCTAssertTrue(out.stderr.contains("not on the allow-list"), out.stderr)
  }

  func testMissingPathSaysSo() throws {
    let out = try run(["inspect", "/nonexistent/model.safetensors"])
    XCTAssertEqual(out.status, 1)
    XCTAssertTrue(out.stderr.contains("/nonexistent/model.safetensors"), out.stderr)
  }
}
