import CZlib
import Foundation
import ModelIO
import Nodes
import Workflow

/// What `cogflow inspect IMAGE.png` reports: the PNG's structure read chunk by chunk (PNG spec, 3rd ed.,
/// §5 datastream structure, §11.2.1 IHDR, §11.3.3 tEXt/zTXt/iTXt). Pixel data is skipped, not decoded, so a
/// large image answers at once; every length is checked against the file before it is used.
struct PNGReport: Encodable {
  struct Chunk: Encodable {
    var type: String
    var offset: Int
    var length: Int
    /// The chunk's CRC matches its type and data (checked for the chunks that are read: all but IDAT).
    var crcOK: Bool?
  }

  struct Text: Encodable {
    var keyword: String
    /// tEXt, zTXt or iTXt.
    var chunk: String
    var compressed: Bool
    var language: String?
    var translatedKeyword: String?
    var text: String
  }

  var path: String
  var format = "png"
  var width = 0
  var height = 0
  var bitDepth = 0
  var colorType = 0
  var colorTypeName = ""
  var interlace = ""
  var chunks: [Chunk] = []
  var texts: [Text] = []
  var bytes = 0

  static let signature: [UInt8] = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]
  /// Text chunks larger than this (read or inflated) are refused: provenance records are kilobytes.
  static let maxTextBytes = 16 << 20
  /// More chunks than this are refused (a PNG writer puts pixel data in a few hundred at most).
  static let maxChunks = 1_000_000

  /// Whether `path` is a regular file starting with the PNG signature. Opened non-blocking and checked to be a
  /// regular file before reading, so a FIFO or a device is not read here (it goes on to the model recognizer,
  /// which explains what it is).
  static func looksLikePNG(_ path: String) -> Bool {
    guard let file = try? PNGFile(path) else { return false }
    defer { file.closeFile() }
    return (try? file.read(at: 0, count: 8)) == signature
  }

  static func colorTypeName(_ t: Int) -> String {
    switch t {
    case 0: return "grayscale"
    case 2: return "RGB"
    case 3: return "palette"
    case 4: return "grayscale + alpha"
    case 6: return "RGBA"
    default: return "invalid (\(t))"
    }
  }

  init(path: String) throws {
    self.path = path
    let file = try PNGFile(path)
    defer { file.closeFile() }
    func bad(_ reason: String) -> ModelIOError { .malformed(path: path, tensor: nil, reason: "PNG: " + reason) }
    let size = file.size
    bytes = size
    guard size >= 8, try file.read(at: 0, count: 8) == Self.signature else {
      throw bad("no PNG signature (the file does not start with the 8 PNG bytes)")
    }
    var at = 8
    var sawIEND = false
    while at < size {
      guard chunks.count < Self.maxChunks else { throw bad("more than \(Self.maxChunks) chunks") }
      guard size - at >= 12 else {
        throw bad(
          "truncated: \(size - at) byte(s) after the last chunk at offset \(at), too few for a chunk header "
            + "(the file was cut short; copy or save it again)")
      }
      let header = try file.read(at: at, count: 8)
      let length = Int(Self.uint32(header, 0))
      let typeBytes = Array(header[4..<8])
      guard typeBytes.allSatisfy({ (65...90).contains($0) || (97...122).contains($0) }) else {
        throw bad("chunk at offset \(at) has an invalid type \(typeBytes) (not four ASCII letters)")
      }
      let type = String(decoding: typeBytes, as: UTF8.self)
      guard length <= Int(Int32.max) else { throw bad("chunk \(type) at offset \(at) declares \(length) bytes") }
      guard length + 12 <= size - at else {
        throw bad(
          "truncated: chunk \(type) at offset \(at) declares \(length) data bytes, but the file ends after "
            + "\(max(0, size - at - 8)) (the file was cut short; copy or save it again)")
      }
      if chunks.isEmpty && type != "IHDR" { throw bad("the first chunk is \(type), not IHDR") }
      var chunk = Chunk(type: type, offset: at, length: length, crcOK: nil)
      let isText = Self.isText(type)
      if isText && length > Self.maxTextBytes {
        throw bad("\(type) chunk at offset \(at) holds \(length) bytes, more than the \(Self.maxTextBytes) read")
      }
      // Pixel data and large private chunks are skipped; everything else is read and its CRC checked.
      if type == "IHDR" || isText || (type != "IDAT" && length <= 1 << 20) {
        let data = try file.read(at: at + 8, count: length)
        let stored = Self.uint32(try file.read(at: at + 8 + length, count: 4), 0)
        var crc = crc32(0, typeBytes, 4)
        crc = data.withUnsafeBufferPointer { crc32(crc, $0.baseAddress, UInt32($0.count)) }
        chunk.crcOK = UInt32(crc) == stored
        if type == "IHDR" { try readHeader(data, bad) }
        if isText { texts.append(try Self.text(type, data, offset: at, bad)) }
      }
      chunks.append(chunk)
      at += length + 12
      if type == "IEND" {
        sawIEND = true
        break
      }
    }
    guard sawIEND else { throw bad("truncated: no IEND chunk (the file was cut short; copy or save it again)") }
  }

  private mutating func readHeader(_ d: [UInt8], _ bad: (String) -> ModelIOError) throws {
    guard d.count == 13 else { throw bad("IHDR has \(d.count) bytes, not 13") }
    width = Int(Self.uint32(d, 0))
    height = Int(Self.uint32(d, 4))
    bitDepth = Int(d[8])
    colorType = Int(d[9])
    colorTypeName = Self.colorTypeName(colorType)
    switch d[12] {
    case 0: interlace = "none"
    case 1: interlace = "Adam7"
    default: interlace = "invalid (\(d[12]))"
    }
  }

  static func isText(_ type: String) -> Bool { type == "tEXt" || type == "zTXt" || type == "iTXt" }

  static func uint32(_ d: [UInt8], _ i: Int) -> UInt32 {
    UInt32(d[i]) << 24 | UInt32(d[i + 1]) << 16 | UInt32(d[i + 2]) << 8 | UInt32(d[i + 3])
  }

  /// §11.3.3: keyword NUL text (tEXt, Latin-1); keyword NUL method zlib-text (zTXt); keyword NUL flag method
  /// language NUL translated-keyword NUL text (iTXt, UTF-8, zlib when flag is 1).
  static func text(_ type: String, _ d: [UInt8], offset: Int, _ bad: (String) -> ModelIOError) throws -> Text {
    guard let nul = d.firstIndex(of: 0) else { throw bad("\(type) chunk at offset \(offset) has no keyword end") }
    let keyword = latin1(d[0..<nul])
    var rest = d[(nul + 1)...]
    switch type {
    case "tEXt":
      return Text(keyword: keyword, chunk: type, compressed: false, text: latin1(rest))
    case "zTXt":
      guard rest.first == 0 else { throw bad("zTXt '\(keyword)' uses an unknown compression method") }
      let inflated = try inflate(Array(rest.dropFirst()), what: "zTXt '\(keyword)'", bad)
      return Text(keyword: keyword, chunk: type, compressed: true, text: latin1(inflated[...]))
    default:
      guard rest.count >= 2 else { throw bad("iTXt '\(keyword)' at offset \(offset) is cut short") }
      let compressed = rest[rest.startIndex] == 1
      rest = rest.dropFirst(2)
      guard let langEnd = rest.firstIndex(of: 0) else { throw bad("iTXt '\(keyword)' has no language end") }
      let language = String(decoding: rest[..<langEnd], as: UTF8.self)
      rest = rest[(langEnd + 1)...]
      guard let transEnd = rest.firstIndex(of: 0) else {
        throw bad("iTXt '\(keyword)' has no translated-keyword end")
      }
      let translated = String(decoding: rest[..<transEnd], as: UTF8.self)
      var body = Array(rest[(transEnd + 1)...])
      if compressed { body = try inflate(body, what: "iTXt '\(keyword)'", bad) }
      return Text(
        keyword: keyword, chunk: type, compressed: compressed, language: language.isEmpty ? nil : language,
        translatedKeyword: translated.isEmpty ? nil : translated, text: String(decoding: body, as: UTF8.self))
    }
  }

  static func latin1(_ bytes: ArraySlice<UInt8>) -> String {
    String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) }))
  }

  /// zlib-inflates at most `maxTextBytes` (deflate expands at most ~1032:1, so the buffer is sized from that).
  static func inflate(_ src: [UInt8], what: String, _ bad: (String) -> ModelIOError) throws -> [UInt8] {
    let capacity = min(maxTextBytes, max(64, src.count * 1032 + 64))
    var out = [UInt8](repeating: 0, count: capacity)
    var produced = uLongf(capacity)
    let rc = out.withUnsafeMutableBufferPointer { dst in
      src.withUnsafeBufferPointer { s in uncompress(dst.baseAddress, &produced, s.baseAddress, uLong(s.count)) }
    }
    guard rc == Z_OK else {
      throw bad(
        rc == Z_BUF_ERROR
          ? "\(what) inflates past \(maxTextBytes) bytes" : "\(what) is not valid zlib data (zlib error \(rc))")
    }
    return Array(out.prefix(Int(produced)))
  }

  /// The chunk list with runs of one type folded: "IDAT × 12 (123,456 bytes)".
  var chunkSummary: [String] {
    var out: [String] = []
    var i = 0
    while i < chunks.count {
      var j = i
      var total = 0
      while j < chunks.count && chunks[j].type == chunks[i].type {
        total += chunks[j].length
        j += 1
      }
      let bad = chunks[i..<j].contains { $0.crcOK == false } ? ", CRC MISMATCH" : ""
      out.append(
        j - i == 1
          ? "\(chunks[i].type) (\(total) bytes\(bad))" : "\(chunks[i].type) × \(j - i) (\(total) bytes\(bad))")
      i = j
    }
    return out
  }
}

/// A regular file read with pread (opened by `RegularFile.openRegular`: type-checked before any read).
private struct PNGFile {
  let fd: Int32
  let size: Int
  let path: String

  init(_ path: String) throws {
    self.path = path
    let opened = try RegularFile.openRegular(path, what: "image")
    fd = opened.fd
    size = opened.size
  }

  func read(at offset: Int, count: Int) throws -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    var done = 0
    while done < count {
      let n = out.withUnsafeMutableBytes { buffer -> Int in
        guard let base = buffer.baseAddress else { return 0 }
        return pread(fd, base + done, count - done, off_t(offset + done))
      }
      if n < 0 && errno == EINTR { continue }
      guard n > 0 else {
        throw ModelIOError.unreadable(
          path: path,
          reason: n == 0 ? "the file ended early at byte \(offset + done)" : String(cString: strerror(errno)))
      }
      done += n
    }
    return out
  }

  func closeFile() { close(fd) }
}

extension InspectCommand {
  /// Text values longer than this are cut in the text view (`--json` prints them whole).
  static let textPreview = 400

  static func printPNG(path: String, json: Bool) throws {
    let report = try PNGReport(path: path)
    let provenance = report.texts.first { $0.keyword == ProvenanceRecord.keyword }
    // The record pretty-printed when it is a JSON object; a damaged one is shown as text with the reason.
    var recordObject: Any?
    var recordProblem: String?
    if let provenance {
      recordObject = try? JSONSerialization.jsonObject(with: Data(provenance.text.utf8))
      if !(recordObject is [String: Any]) {
        recordObject = nil
        recordProblem = "not a JSON object (damaged, or not written by CogFlow)"
      } else {
        do {
          _ = try ProvenanceRecord.decode(provenance.text, source: path)
        } catch {
          recordProblem = "\(error)"
        }
      }
    }
    if json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys]
      guard var object = try JSONSerialization.jsonObject(with: try encoder.encode(report)) as? [String: Any] else {
        return
      }
      object["provenance"] = recordObject ?? NSNull()
      if let recordProblem { object["provenanceProblem"] = recordProblem }
      let data = try JSONSerialization.data(
        withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
      print(String(decoding: data, as: UTF8.self))
      return
    }
    var out = "path: \(path)\nformat: PNG\n"
    out += "size: \(report.width) x \(report.height)\n"
    out += "colour type: \(report.colorType) (\(report.colorTypeName))\n"
    out += "bit depth: \(report.bitDepth)\n"
    out += "interlace: \(report.interlace)\n"
    out += "bytes: \(grouped(report.bytes))\n"
    out += "chunks: " + report.chunkSummary.joined(separator: ", ") + "\n"
    out += "text chunks: \(report.texts.count)\n"
    for t in report.texts {
      let kind = t.chunk + (t.compressed ? ", compressed" : "") + (t.language.map { ", language \($0)" } ?? "")
      if t.keyword == ProvenanceRecord.keyword {
        out += "  \(escaped(t.keyword)) (\(kind), \(grouped(t.text.utf8.count)) bytes): the record below\n"
      } else {
        out += "  \(escaped(t.keyword)) (\(kind)): \(preview(t.text))\n"
      }
    }
    if provenance == nil {
      out += "provenance: none (no '\(ProvenanceRecord.keyword)' chunk: not saved by CogFlow's save-image)\n"
    } else if let recordObject,
      let data = try? JSONSerialization.data(
        withJSONObject: recordObject, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    {
      out += "provenance:\n"
      for line in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
        out += "  " + line + "\n"
      }
    }
    if let recordProblem, let provenance {
      out += "provenance problem: \(escaped(recordProblem))\n"
      if recordObject == nil { out += "  raw: \(preview(provenance.text))\n" }
    }
    print(out, terminator: "")
  }

  /// Control characters shown as escapes, so a text chunk cannot drive the terminal.
  static func escaped(_ s: String) -> String { Diagnostic.sanitize(s, limit: .max) }

  /// The first `textPreview` characters, escaped (`--json` prints text chunks whole).
  static func preview(_ s: String) -> String { Diagnostic.sanitize(s, limit: textPreview) }
}
