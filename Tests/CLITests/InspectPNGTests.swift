import Foundation
import XCTest

/// `cogflow inspect IMAGE.png` on PNGs assembled byte by byte here (chunks, CRCs and zlib streams per the PNG
/// spec), so the reader is checked against the format rather than against the library that writes CogFlow's PNGs.
final class InspectPNGTests: XCTestCase {
  // MARK: building PNGs

  static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
    var c = UInt32(n)
    for _ in 0..<8 { c = c & 1 != 0 ? 0xedb8_8320 ^ (c >> 1) : c >> 1 }
    return c
  }

  static func crc(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xffff_ffff
    for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xff)] ^ (c >> 8) }
    return c ^ 0xffff_ffff
  }

  static func be32(_ v: UInt32) -> [UInt8] {
    [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)]
  }

  static func chunk(_ type: String, _ data: [UInt8], corruptCRC: Bool = false) -> [UInt8] {
    let body = Array(type.utf8) + data
    return be32(UInt32(data.count)) + body + be32(crc(body) ^ (corruptCRC ? 1 : 0))
  }

  /// A zlib stream of stored (uncompressed) deflate blocks: valid input for any inflater.
  static func zlibStored(_ data: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [0x78, 0x01]
    var at = 0
    repeat {
      let n = min(65535, data.count - at)
      let last: UInt8 = at + n == data.count ? 1 : 0
      out += [last, UInt8(n & 0xff), UInt8(n >> 8), UInt8(~n & 0xff), UInt8((~n >> 8) & 0xff)]
      out += data[at..<(at + n)]
      at += n
    } while at < data.count
    var a: UInt32 = 1
    var b: UInt32 = 0
    for byte in data {
      a = (a + UInt32(byte)) % 65521
      b = (b + a) % 65521
    }
    return out + be32(b << 16 | a)
  }

  static func ihdr(width: UInt32, height: UInt32, depth: UInt8, colour: UInt8, interlace: UInt8) -> [UInt8] {
    chunk("IHDR", be32(width) + be32(height) + [depth, colour, 0, 0, interlace])
  }

  /// An 8-bit RGB image with its pixel rows (filter byte 0 each) in one IDAT.
  static func rgbPNG(width: Int, height: Int, texts: [[UInt8]]) -> [UInt8] {
    var raw: [UInt8] = []
    for y in 0..<height {
      raw.append(0)
      for x in 0..<width { raw += [UInt8(x * 40 & 0xff), UInt8(y * 40 & 0xff), 128] }
    }
    var png: [UInt8] = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]
    png += ihdr(width: UInt32(width), height: UInt32(height), depth: 8, colour: 2, interlace: 0)
    for t in texts { png += t }
    png += chunk("IDAT", zlibStored(raw))
    png += chunk("IEND", [])
    return png
  }

  static func tEXt(_ key: String, _ text: String) -> [UInt8] {
    chunk("tEXt", Array(key.utf8) + [0] + text.unicodeScalars.map { UInt8($0.value) })
  }

  static func iTXt(_ key: String, _ text: String, compressed: Bool = false, language: String = "") -> [UInt8] {
    let body = compressed ? zlibStored(Array(text.utf8)) : Array(text.utf8)
    return chunk("iTXt", Array(key.utf8) + [0, compressed ? 1 : 0, 0] + Array(language.utf8) + [0, 0] + body)
  }

  /// A complete record in the layout of `ProvenanceRecord` (cogflow-provenance-1), written by hand.
  static let record = """
    {"ancestors":{"text":"k1"},"cogflow":"0.1.0","engine":"cogflow-engine 1","format":"cogflow-provenance-1",\
    "models":{"t5":{"digest":"d1","path":"/models/t5-v1_1-xxl"}},"node":{"id":"save","key":"k2","type":"save-image"},\
    "overrides":["seed=3"],"params":{"seed":3},"workflow":{"name":"demo","sources":[{"path":"demo.yaml","text":"x"}]}}
    """

  // MARK: running

  func inspect(_ bytes: [UInt8], _ extra: [String] = []) throws -> (CLI.Output, String) {
    let scratch = Scratch()
    let path = scratch.path + "/image.png"
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return (try CLI.run(["inspect", path] + extra, env: ProcessInfo.processInfo.environment, cwd: scratch.path), path)
  }

  func testStructureTextChunksAndProvenance() throws {
    let png = Self.rgbPNG(
      width: 5, height: 3,
      texts: [Self.tEXt("Software", "CogFlow 0.1.0 (cogflow-engine 1)"), Self.iTXt("cogflow:provenance", Self.record)])
    let (out, _) = try inspect(png)
    XCTAssertEqual(out.status, 0, out.stderr)
    for expected in [
      "format: PNG", "size: 5 x 3", "colour type: 2 (RGB)", "bit depth: 8", "interlace: none",
      "chunks: IHDR (13 bytes), tEXt (41 bytes), iTXt (", "IEND (0 bytes)", "text chunks: 2",
      "Software (tEXt): CogFlow 0.1.0 (cogflow-engine 1)", "cogflow:provenance (iTXt, ",
      "provenance:\n  {", "\"overrides\" : [", "\"seed=3\"", "\"path\" : \"/models/t5-v1_1-xxl\"",
    ] {
      XCTAssertTrue(out.stdout.contains(expected), "missing \(expected) in:\n\(out.stdout)")
    }
    XCTAssertFalse(out.stdout.contains("provenance problem"), out.stdout)
  }

  func testJSONHoldsTheRecordAsAnObject() throws {
    let png = Self.rgbPNG(width: 2, height: 2, texts: [Self.iTXt("cogflow:provenance", Self.record)])
    let (out, _) = try inspect(png, ["--json"])
    XCTAssertEqual(out.status, 0, out.stderr)
    let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any])
    XCTAssertEqual(object["format"] as? String, "png")
    XCTAssertEqual(object["width"] as? Int, 2)
    XCTAssertEqual(object["colorTypeName"] as? String, "RGB")
    let chunks = try XCTUnwrap(object["chunks"] as? [[String: Any]])
    XCTAssertEqual(chunks.map { $0["type"] as? String }, ["IHDR", "iTXt", "IDAT", "IEND"])
    XCTAssertEqual(chunks.first?["offset"] as? Int, 8)
    let record = try XCTUnwrap(object["provenance"] as? [String: Any])
    XCTAssertEqual((record["node"] as? [String: Any])?["id"] as? String, "save")
    XCTAssertNil(object["provenanceProblem"])
  }

  func testPNGWithoutProvenanceSaysSo() throws {
    let (out, _) = try inspect(Self.rgbPNG(width: 4, height: 4, texts: [Self.tEXt("Title", "a\u{1b}[31mred")]))
    XCTAssertEqual(out.status, 0, out.stderr)
    XCTAssertTrue(out.stdout.contains("provenance: none"), out.stdout)
    // The escape character is shown, not sent to the terminal.
    XCTAssertTrue(out.stdout.contains("Title (tEXt): a\\u{1b}[31mred"), out.stdout)
    XCTAssertFalse(out.stdout.contains("\u{1b}"))
  }

  func testGrayInterlacedCompressedTextAndBadCRC() throws {
    var png: [UInt8] = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]
    png += Self.ihdr(width: 1, height: 1, depth: 16, colour: 0, interlace: 1)
    png += Self.chunk("zTXt", Array("Comment".utf8) + [0, 0] + Self.zlibStored(Array("squeezed words".utf8)))
    png += Self.iTXt("Title", "Überschrift", compressed: true, language: "de")
    png += Self.chunk("tEXt", Array("Author".utf8) + [0] + Array("x".utf8), corruptCRC: true)
    png += Self.chunk("IDAT", Self.zlibStored([0, 0, 0]))
    png += Self.chunk("IEND", [])
    let (out, _) = try inspect(png)
    XCTAssertEqual(out.status, 0, out.stderr)
    for expected in [
      "colour type: 0 (grayscale)", "bit depth: 16", "interlace: Adam7", "Comment (zTXt, compressed): squeezed words",
      "Title (iTXt, compressed, language de): Überschrift", "tEXt (8 bytes, CRC MISMATCH)",
    ] {
      XCTAssertTrue(out.stdout.contains(expected), "missing \(expected) in:\n\(out.stdout)")
    }
  }

  func testTruncatedPNGIsAClearError() throws {
    let png = Self.rgbPNG(width: 8, height: 8, texts: [])
    let idat = 8 + 25
    let (out, path) = try inspect(Array(png.prefix(idat + 30)))
    XCTAssertEqual(out.status, 1, out.stdout)
    XCTAssertTrue(out.stderr.contains(path), out.stderr)
    XCTAssertTrue(out.stderr.contains("truncated: chunk IDAT at offset \(idat) declares"), out.stderr)
    XCTAssertTrue(out.stderr.contains("cut short"), out.stderr)

    let (noEnd, _) = try inspect(Array(png.prefix(png.count - 12)))
    XCTAssertEqual(noEnd.status, 1)
    XCTAssertTrue(noEnd.stderr.contains("no IEND chunk"), noEnd.stderr)
  }

  func testDamagedRecordIsShownWithTheReason() throws {
    let png = Self.rgbPNG(width: 1, height: 1, texts: [Self.iTXt("cogflow:provenance", "{\"format\": 1")])
    let (out, _) = try inspect(png)
    XCTAssertEqual(out.status, 0, out.stderr)
    XCTAssertTrue(out.stdout.contains("provenance problem: not a JSON object"), out.stdout)
    XCTAssertTrue(out.stdout.contains("raw: {\"format\": 1"), out.stdout)

    let partial = Self.rgbPNG(width: 1, height: 1, texts: [Self.iTXt("cogflow:provenance", "{\"format\": \"x\"}")])
    let (half, _) = try inspect(partial)
    XCTAssertTrue(half.stdout.contains("provenance problem:"), half.stdout)
    XCTAssertTrue(half.stdout.contains("lacks field"), half.stdout)
  }
}
