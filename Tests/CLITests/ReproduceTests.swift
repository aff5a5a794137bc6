import Foundation
import XCTest

/// `cogflow reproduce` end to end on the tiny model set: relay-1024 at a small size is run once, its workflow file
/// deleted, and the PNG reproduced from its own record (cached, byte for byte); missing and changed models, and a
/// PNG without a record, are refused with exit 2 naming what to do.
final class ReproduceTests: XCTestCase {
  static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
  static let tiny = repo.appendingPathComponent("Tests/Fixtures/tiny-cogview3").path
  static let relay = repo.appendingPathComponent("Workflows/relay-1024.yaml").path

  struct Made {
    let scratch: Scratch
    let png: String
    let cache: String
    let workflow: String
  }

  /// Runs a copy of relay-1024.yaml at 64² → 128² with few steps; returns the PNG it saved.
  func makeImage() throws -> Made {
    guard FileManager.default.fileExists(atPath: Self.tiny + "/cogview3-base") else {
      throw XCTSkip("the tiny model set (Tests/Fixtures/tiny-cogview3) is not in this checkout")
    }
    let scratch = Scratch()
    let folder = scratch.path + "/flows"
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let workflow = folder + "/relay-1024.yaml"
    try FileManager.default.copyItem(atPath: Self.relay, toPath: workflow)
    let cache = scratch.path + "/cache"
    let out = try CLI.run(
      [
        "run", workflow, "--models", Self.tiny, "--cache", cache, "--quiet", "--set", "size=64", "--set",
        "base_steps=3", "--set", "relay_steps=2", "--set", "seed=5",
      ], env: ProcessInfo.processInfo.environment, cwd: scratch.path)
    XCTAssertEqual(out.status, 0, out.stderr)
    let png = scratch.path + "/out/relay-1024-5.png"
    XCTAssertTrue(FileManager.default.fileExists(atPath: png), out.stderr)
    return Made(scratch: scratch, png: png, cache: cache, workflow: workflow)
  }

  func reproduce(_ made: Made, _ extra: [String]) throws -> CLI.Output {
    let elsewhere = made.scratch.path + "/elsewhere"
    try FileManager.default.createDirectory(atPath: elsewhere, withIntermediateDirectories: true)
    return try CLI.run(
      ["reproduce", made.png, "--cache", made.cache, "--quiet"] + extra, env: ProcessInfo.processInfo.environment,
      cwd: elsewhere)
  }

  func testReproducesByteForByteFromTheCacheAfterTheWorkflowIsDeleted() throws {
    let made = try makeImage()
    try FileManager.default.removeItem(atPath: made.workflow)
    let again = made.scratch.path + "/again.png"
    let out = try reproduce(made, ["--out", again])
    XCTAssertEqual(out.status, 0, out.stderr)
    XCTAssertTrue(out.stdout.contains("from the cache, 1 ran"), out.stdout)
    XCTAssertTrue(out.stdout.contains("identical to \(made.png), byte for byte"), out.stdout)
    XCTAssertEqual(FileManager.default.contents(atPath: again), FileManager.default.contents(atPath: made.png))
    XCTAssertFalse(FileManager.default.fileExists(atPath: made.scratch.path + "/elsewhere/out"), "wrote into cwd")
  }

  func testMissingModelsFolderExits2NamingModelPathAndOption() throws {
    let made = try makeImage()
    let nowhere = made.scratch.path + "/no-models"
    let out = try reproduce(made, ["--models", nowhere])
    XCTAssertEqual(out.status, 2, out.stdout + out.stderr)
    XCTAssertTrue(out.stderr.contains("model '"), out.stderr)
    XCTAssertTrue(out.stderr.contains("not found at \(nowhere)/"), out.stderr)
    XCTAssertTrue(out.stderr.contains("--models DIR"), out.stderr)
  }

  func testChangedModelExits2BeforeRunning() throws {
    let made = try makeImage()
    let copy = made.scratch.path + "/models"
    try FileManager.default.copyItem(atPath: Self.tiny, toPath: copy)
    let vae = copy + "/cogview3-base-3b-vae/sdxl_vae.safetensors"
    var bytes = try XCTUnwrap(FileManager.default.contents(atPath: vae))
    bytes[bytes.count - 1] ^= 0xff
    try bytes.write(to: URL(fileURLWithPath: vae))
    let out = try reproduce(made, ["--models", copy])
    XCTAssertEqual(out.status, 2, out.stdout + out.stderr)
    XCTAssertTrue(out.stderr.contains("model 'vae' at \(vae) is not the one the image was made with"), out.stderr)
    XCTAssertTrue(out.stderr.contains("--models DIR"), out.stderr)
  }

  func testPNGWithoutRecordExits2() throws {
    let scratch = Scratch()
    let path = scratch.path + "/plain.png"
    try Data(InspectPNGTests.rgbPNG(width: 1, height: 1, texts: [])).write(to: URL(fileURLWithPath: path))
    let out = try CLI.run(["reproduce", path], env: ProcessInfo.processInfo.environment, cwd: scratch.path)
    XCTAssertEqual(out.status, 2)
    XCTAssertTrue(out.stderr.contains("no 'cogflow:provenance' text chunk"), out.stderr)
  }
}
