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

  /// A one-entry zip whose deflated entry claims `claimed` bytes (hand-built: local header, data, directory).
  func zip(claimed: UInt32, data: [UInt8]) -> [UInt8] {
    func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff)] }
    func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(v >> (8 * UInt32($0)) & 0xff) } }
    let name = Array("archive/data.pkl".utf8)
    var out = le32(0x0403_4b50) + le16(20) + le16(0) + le16(8) + le16(0) + le16(0) + le32(0)
    out += le32(UInt32(data.count)) + le32(claimed) + le16(name.count) + le16(0) + name + data
    let directory = out.count
    out += le32(0x0201_4b50) + le16(20) + le16(20) + le16(0) + le16(8) + le16(0) + le16(0) + le32(0)
    out += le32(UInt32(data.count)) + le32(claimed) + le16(name.count) + le16(0) + le16(0) + le16(0) + le16(0)
    out += le32(0) + le32(0) + name
    let directorySize = out.count - directory
    out += le32(0x0605_4b50) + le16(0) + le16(0) + le16(1) + le16(1) + le32(UInt32(directorySize))
    out += le32(UInt32(directory)) + le16(0)
    return out
  }

  func testInflateIsCappedFromTheDirectoryEntry() throws {
    let bytes = zip(claimed: 300 << 20, data: [UInt8](repeating: 0, count: 400_000))
    let archive = try bytes.withUnsafeBytes { try ZipArchive(file: MappedFile(copying: $0, name: "bomb.pt")) }
    let entry = try XCTUnwrap(archive.entries.first)
    assertModelIOError([
      "archive/data.pkl", "more than the \(ZipArchive.maxInflateBytes)-byte limit", "COGFLOW_MAX_INFLATE_BYTES",
    ]) {
      _ = try archive.contents(entry, verify: false)
    }
  }
}
