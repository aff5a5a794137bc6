import Foundation
import XCTest

/// Examples/embed is built by the package; this runs it on the tiny model set and checks what it reads back.
final class EmbedExampleTests: XCTestCase {
  func testEmbedExampleRunsAndReadsBackImagePNGAndProvenance() throws {
    let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    let tiny = repo.appendingPathComponent("Tests/Fixtures/tiny-cogview3").path
    guard FileManager.default.fileExists(atPath: tiny + "/cogview3-base") else {
      throw XCTSkip("the tiny model set (Tests/Fixtures/tiny-cogview3) is not in this checkout")
    }
    let binary = (CLI.binary as NSString).deletingLastPathComponent + "/cogflow-embed-example"
    guard FileManager.default.isExecutableFile(atPath: binary) else {
      throw XCTSkip("cogflow-embed-example is not built beside cogflow (\(binary)); `swift build` builds it")
    }
    let scratch = Scratch()
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = [repo.appendingPathComponent("Workflows/relay-1024.yaml").path, tiny, scratch.path]
    process.currentDirectoryURL = URL(fileURLWithPath: scratch.path)
    let out = scratch.path + "/stdout"
    FileManager.default.createFile(atPath: out, contents: nil)
    process.standardOutput = FileHandle(forWritingAtPath: out)
    try process.run()
    process.waitUntilExit()
    let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    XCTAssertEqual(process.terminationStatus, 0, text)
    for expected in [
      "progress base 1/4", "progress base 4/4", "done save", "image tensor [1, 3, 128, 128]",
      "png 128x128 channels 3", "provenance workflow relay-1024 node save overrides [\"seed=7\", \"size=64\"",
      "provenance models base,relay,t5,vae",
    ] {
      XCTAssertTrue(text.contains(expected), "missing \(expected) in:\n\(text)")
    }
  }
}
