import Foundation
import XCTest

@testable import ModelIO

/// Hostile model files (issue 10): headers that would amplify memory, files that never end, the wrong kind.
final class ModelIOHardeningTests: XCTestCase {
  func header(_ json: String) -> [UInt8] {
    let h = Array(json.utf8)
    return (0..<8).map { UInt8((h.count >> (8 * $0)) & 0xff) } + h
  }

  func testTensorCountIsBoundedAndHeaderParsedInOnePass() throws {
    let n = SafetensorsFile.maxTensors + 1
    var json = "{"
    for i in 0..<n { json += (i == 0 ? "" : ",") + "\"t\(i)\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]}" }
    json += "}"
    let started = Date()
    assertModelIOError(["more than \(SafetensorsFile.maxTensors) tensors", "COGFLOW_MAX_TENSORS"]) {
      _ = try self.header(json).withUnsafeBytes { try SafetensorsFile.parseHeader($0, path: "mem") }
    }
    XCTAssertLessThan(Date().timeIntervalSince(started), 20)
    // The scanner reads escapes, skips unknown fields and rejects what JSON rejects.
    let ok = header(#"{"a\u00e9\n":{"x":[{"y":null},true,-1.5e3],"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#)
    let parsed = try (ok + [1, 2]).withUnsafeBytes { try SafetensorsFile.parseHeader($0, path: "mem") }
    XCTAssertEqual(Array(parsed.entries.keys), ["aé\n"])
    let entry = #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}"#
    for bad in [#"{"a":{"dtype":"U8",}}"#, entry + "} x", entry, #"{"a":[01x]}"#, "{\"a\":\"\u{1}\"}"] {
      assertModelIOError(["not valid JSON"]) {
        _ = try (self.header(bad) + [7]).withUnsafeBytes { try SafetensorsFile.parseHeader($0, path: "mem") }
      }
    }
    let deep = "{\"a\":{\"x\":" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}}"
    assertModelIOError(["not valid JSON"]) {
      _ = try self.header(deep).withUnsafeBytes { try SafetensorsFile.parseHeader($0, path: "mem") }
    }
  }

  func testOnlyRegularFilesAndPNGIsNamed() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mio-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    XCTAssertEqual(mkfifo(dir + "/pipe", 0o600), 0)
    let started = Date()
    assertModelIOError(["pipe", "FIFO (named pipe), not a regular file"]) { _ = try ModelFiles.open(dir + "/pipe") }
    assertModelIOError(["character device, not a regular file"]) { _ = try SafetensorsFile(path: "/dev/zero") }
    XCTAssertLessThan(Date().timeIntervalSince(started), 5, "no blocking open")
    assertModelIOError(["gray8.png", "PNG image, not a model file"]) {
      _ = try ModelFiles.open(Fixture.path("png/gray8.png"))
    }
  }
}
