import Foundation
import Tensor

/// A memory-mapped safetensors file: an 8-byte little-endian header length, a JSON header
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`, then the data section.
/// Tensor bytes are touched only when a tensor is used.
///
/// The header is validated in full when the file is opened: its length lies within the file, the JSON
/// is an object, every entry has a known dtype, a shape of non-negative extents and an offset pair
/// inside the data section whose length equals dtype size × element count, and no two tensors
/// overlap. A malformed file gives `ModelIOError.malformed` naming the file and the tensor.
public final class SafetensorsFile: TensorSource, @unchecked Sendable {
  /// Headers above this size are refused (the reference implementation uses the same bound).
  public static let maxHeaderBytes = 100 << 20

  /// Tensors a header may list (`COGFLOW_MAX_TENSORS`, default 100,000; CogView3's largest file has ~2,000).
  public static let maxTensors: Int = {
    if let text = ProcessInfo.processInfo.environment["COGFLOW_MAX_TENSORS"], let n = Int(text), n > 0 { return n }
    return 100_000
  }()

  public let location: String
  public let metadata: [String: String]
  private let entries: [String: Entry]
  private let file: MappedFile
  private let storage: ByteStorage
  private let dataStart: Int
  public let keys: [String]

  struct Entry {
    var dtype: DType
    var shape: [Int]
    var begin: Int
    var end: Int
  }

  public convenience init(path: String) throws {
    try self.init(file: try MappedFile(path: path), location: path)
  }

  /// Safetensors bytes held in memory (a cache artifact), validated like a file; `name` stands in for the path
  /// in error messages.
  public convenience init(data: Data, name: String) throws {
    let file = data.withUnsafeBytes { MappedFile(copying: $0, name: name) }
    try self.init(file: file, location: name)
  }

  private init(file: MappedFile, location path: String) throws {
    location = path
    self.file = file
    storage = file.storage()
    let parsed = try Self.parseHeader(
      UnsafeRawBufferPointer(start: file.base, count: file.size), path: path)
    dataStart = parsed.dataStart
    entries = parsed.entries
    metadata = parsed.metadata
    keys = parsed.entries.keys.sorted()
  }

  /// The size of the data section: tensor offsets are relative to its start.
  public var dataByteCount: Int { file.size - dataStart }

  public func stored(_ key: String) throws -> StoredTensor {
    guard let e = entries[key] else { throw ModelIOError.missingTensor(path: location, key: key) }
    return try StoredTensor(dtype: e.dtype, shape: e.shape, storage: storage, offset: dataStart + e.begin)
  }

  public func info(_ key: String) throws -> TensorInfo {
    guard let e = entries[key] else { throw ModelIOError.missingTensor(path: location, key: key) }
    return TensorInfo(dtype: e.dtype, shape: e.shape)
  }

  /// Parses and validates a safetensors header held in `bytes` (the whole file, or at least its
  /// header; offsets are checked against `bytes.count`).
  static func parseHeader(_ bytes: UnsafeRawBufferPointer, path: String) throws
    -> (dataStart: Int, entries: [String: Entry], metadata: [String: String])
  {
    func bad(_ tensor: String?, _ reason: String) -> ModelIOError {
      .malformed(path: path, tensor: tensor, reason: reason)
    }
    let size = bytes.count
    guard size >= 8 else { throw bad(nil, "file shorter than the 8-byte header length (\(size) bytes)") }
    let claimed = bytes.le64(0)
    guard claimed <= UInt64(size - 8) else {
      throw bad(nil, "header length \(claimed) exceeds the file (\(size) bytes)")
    }
    let headerLen = Int(claimed)
    guard headerLen <= maxHeaderBytes else {
      throw bad(nil, "header length \(headerLen) exceeds the \(maxHeaderBytes)-byte limit")
    }
    guard headerLen >= 2, bytes[8] == UInt8(ascii: "{") else {
      throw bad(nil, "header does not start with a JSON object")
    }
    let dataStart = 8 + headerLen
    let dataSize = size - dataStart
    guard let base = bytes.baseAddress else { throw bad(nil, "empty file") }
    // One pass over the JSON, each entry parsed straight into its fields: no tree of Any per tensor (a 68 MB
    // header of a million tensors took 4 GB that way), and at most `maxTensors` entries.
    var scanner = HeaderScanner(bytes: UnsafeRawBufferPointer(start: base + 8, count: headerLen))
    let invalid = bad(nil, "header is not valid JSON")
    var metadata: [String: String] = [:]
    var entries: [String: Entry] = [:]
    guard scanner.consume(UInt8(ascii: "{")) else { throw bad(nil, "header is not a JSON object") }
    var firstMember = true
    while true {
      if scanner.consume(UInt8(ascii: "}")) { break }
      if !firstMember { guard scanner.consume(UInt8(ascii: ",")) else { throw invalid } }
      firstMember = false
      guard let name = scanner.string(), scanner.consume(UInt8(ascii: ":")) else { throw invalid }
      if name == "__metadata__" {
        guard scanner.consume(UInt8(ascii: "{")) else {
          guard scanner.skipValue() else { throw invalid }
          throw bad(nil, "__metadata__ is not an object")
        }
        var firstField = true
        while !scanner.consume(UInt8(ascii: "}")) {
          if !firstField { guard scanner.consume(UInt8(ascii: ",")) else { throw invalid } }
          firstField = false
          guard let k = scanner.string(), scanner.consume(UInt8(ascii: ":")) else { throw invalid }
          guard scanner.peek() == UInt8(ascii: "\"") else {
            guard scanner.skipValue() else { throw invalid }
            throw bad(nil, "__metadata__ value for '\(k)' is not a string")
          }
          guard let v = scanner.string() else { throw invalid }
          metadata[k] = v
        }
        continue
      }
      guard entries[name] == nil else { throw bad(name, "tensor listed twice in the header") }
      guard entries.count < maxTensors else {
        throw bad(nil, "header lists more than \(maxTensors) tensors (raise COGFLOW_MAX_TENSORS if this is intended)")
      }
      guard scanner.consume(UInt8(ascii: "{")) else {
        guard scanner.skipValue() else { throw invalid }
        throw bad(name, "header entry is not an object")
      }
      var ds: String?
      var shape: [Int]?
      var shapeBad = false
      var offs: [Int]?
      var offsBad = false
      var firstField = true
      while !scanner.consume(UInt8(ascii: "}")) {
        if !firstField { guard scanner.consume(UInt8(ascii: ",")) else { throw invalid } }
        firstField = false
        guard let field = scanner.string(), scanner.consume(UInt8(ascii: ":")) else { throw invalid }
        switch field {
        case "dtype":
          if scanner.peek() == UInt8(ascii: "\"") {
            guard let text = scanner.string() else { throw invalid }
            ds = text
          } else {
            guard scanner.skipValue() else { throw invalid }
            ds = nil
          }
        case "shape", "data_offsets":
          guard let list = scanner.integerList(maxCount: field == "shape" ? 64 : 2) else { throw invalid }
          if field == "shape" {
            shape = list
            shapeBad = list == nil
          } else {
            offs = list
            offsBad = list == nil
          }
        default:
          guard scanner.skipValue() else { throw invalid }
        }
      }
      guard let ds else { throw bad(name, "missing dtype") }
      guard let dtype = DType(rawValue: ds) else {
        throw ModelIOError.unsupported(path: path, tensor: name, reason: "dtype \(ds)")
      }
      guard !shapeBad, let shape, shape.allSatisfy({ $0 >= 0 }) else {
        throw bad(name, "shape is not a list of non-negative integers")
      }
      guard !offsBad, let offs, offs.count == 2 else {
        throw bad(name, "data_offsets is not a pair of integers")
      }
      guard let need = checkedByteCount(shape, dtype) else {
        throw bad(name, "shape \(shape) overflows the addressable size")
      }
      guard offs[0] >= 0, offs[0] <= offs[1] else { throw bad(name, "data offsets \(offs) are not ordered") }
      guard offs[1] <= dataSize else {
        throw bad(name, "data offsets \(offs) lie outside the data section (\(dataSize) bytes)")
      }
      guard offs[1] - offs[0] == need else {
        throw bad(
          name, "data offsets \(offs) hold \(offs[1] - offs[0]) bytes but \(ds)\(shape) needs \(need)")
      }
      entries[name] = Entry(dtype: dtype, shape: shape, begin: offs[0], end: offs[1])
    }
    guard scanner.atEnd() else { throw invalid }
    // Overlap check: ranges sorted by start must not begin before the previous one ends.
    let ranges = entries.filter { $0.value.end > $0.value.begin }.sorted {
      ($0.value.begin, $0.key) < ($1.value.begin, $1.key)
    }
    for i in ranges.indices.dropFirst() where ranges[i].value.begin < ranges[i - 1].value.end {
      throw bad(
        ranges[i].key,
        "data [\(ranges[i].value.begin), \(ranges[i].value.end)) overlaps tensor '\(ranges[i - 1].key)' "
          + "[\(ranges[i - 1].value.begin), \(ranges[i - 1].value.end))")
    }
    return (dataStart, entries, metadata)
  }
}

/// A one-pass JSON reader over a safetensors header: strings, integer lists and skipping, without building
/// values. Nesting is bounded (64 levels) so skipping cannot recurse deeply.
struct HeaderScanner {
  let bytes: UnsafeRawBufferPointer
  var i = 0

  init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

  mutating func skipSpace() {
    while i < bytes.count {
      let c = bytes[i]
      guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
      i += 1
    }
  }

  mutating func peek() -> UInt8? {
    skipSpace()
    return i < bytes.count ? bytes[i] : nil
  }

  mutating func consume(_ c: UInt8) -> Bool {
    guard peek() == c else { return false }
    i += 1
    return true
  }

  mutating func atEnd() -> Bool {
    skipSpace()
    return i == bytes.count
  }

  static func hexValue(_ c: UInt8) -> UInt32? {
    switch c {
    case 0x30...0x39: return UInt32(c - 0x30)
    case 0x41...0x46: return UInt32(c - 0x41 + 10)
    case 0x61...0x66: return UInt32(c - 0x61 + 10)
    default: return nil
    }
  }

  mutating func hex4() -> UInt32? {
    guard i + 4 <= bytes.count else { return nil }
    var v: UInt32 = 0
    for k in 0..<4 {
      guard let h = Self.hexValue(bytes[i + k]) else { return nil }
      v = v << 4 | h
    }
    i += 4
    return v
  }

  /// A JSON string (escapes decoded); nil when the next value is not a well-formed string.
  mutating func string() -> String? {
    guard consume(UInt8(ascii: "\"")) else { return nil }
    var out: [UInt8] = []
    while i < bytes.count {
      let c = bytes[i]
      i += 1
      switch c {
      case UInt8(ascii: "\""):
        return String(decoding: out, as: UTF8.self)
      case UInt8(ascii: "\\"):
        guard i < bytes.count else { return nil }
        let e = bytes[i]
        i += 1
        switch e {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
          guard var v = hex4() else { return nil }
          if (0xD800..<0xDC00).contains(v) {
            guard i + 2 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
              return nil
            }
            i += 2
            guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
            v = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00)
          }
          guard let scalar = Unicode.Scalar(v) else { return nil }
          out.append(contentsOf: Array(String(Character(scalar)).utf8))
        default: return nil
        }
      default:
        guard c >= 0x20 else { return nil }
        out.append(c)
      }
    }
    return nil
  }

  /// A JSON number token; returns its text range, or nil when malformed.
  mutating func number() -> (integer: Int?, ok: Bool) {
    let start = i
    if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
    let digitsStart = i
    while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
    guard i > digitsStart else { return (nil, false) }
    var integral = true
    if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
      integral = false
      i += 1
      let f = i
      while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
      guard i > f else { return (nil, false) }
    }
    if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
      integral = false
      i += 1
      if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
      let e = i
      while i < bytes.count, bytes[i] >= 0x30, bytes[i] <= 0x39 { i += 1 }
      guard i > e else { return (nil, false) }
    }
    guard integral, i - start <= 20 else { return (nil, true) }
    let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
    return (Int(text), true)
  }

  /// A JSON array of integers. Outer nil: malformed JSON; inner nil: valid JSON but not a list of at most
  /// `maxCount` integers (a fraction, a bool, a nested value, too many).
  mutating func integerList(maxCount: Int) -> [Int]?? {
    guard consume(UInt8(ascii: "[")) else {
      return skipValue() ? .some(nil) : nil
    }
    var out: [Int] = []
    var valid = true
    var first = true
    while !consume(UInt8(ascii: "]")) {
      if !first { guard consume(UInt8(ascii: ",")) else { return nil } }
      first = false
      guard let c = peek() else { return nil }
      if c == UInt8(ascii: "-") || (c >= 0x30 && c <= 0x39) {
        let (integer, ok) = number()
        guard ok else { return nil }
        if let integer, out.count < maxCount { out.append(integer) } else { valid = false }
      } else {
        guard skipValue() else { return nil }
        valid = false
      }
    }
    return .some(valid ? out : nil)
  }

  /// Skips one JSON value; false when it is malformed or nested deeper than 64 levels.
  mutating func skipValue() -> Bool {
    var stack: [UInt8] = []  // expected closers
    repeat {
      guard let c = peek() else { return false }
      switch c {
      case UInt8(ascii: "{"), UInt8(ascii: "["):
        guard stack.count < 64 else { return false }
        i += 1
        let close = c == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
        if consume(close) { break }
        stack.append(close)
        if close == UInt8(ascii: "}") {
          guard string() != nil, consume(UInt8(ascii: ":")) else { return false }
        }
        continue
      case UInt8(ascii: "\""):
        guard string() != nil else { return false }
      case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
        var matched = false
        for word in ["true", "false", "null"] {
          let w = Array(word.utf8)
          if i + w.count <= bytes.count, zip(w.indices, w).allSatisfy({ bytes[i + $0.0] == $0.1 }) {
            i += w.count
            matched = true
            break
          }
        }
        guard matched else { return false }
      default:
        guard number().ok else { return false }
      }
      // After a value: close containers or move to the next element.
      while let close = stack.last {
        if consume(close) {
          stack.removeLast()
          continue
        }
        guard consume(UInt8(ascii: ",")) else { return false }
        if close == UInt8(ascii: "}") {
          guard string() != nil, consume(UInt8(ascii: ":")) else { return false }
        }
        break
      }
    } while !stack.isEmpty
    return true
  }
}

/// Writes safetensors files: tensors sorted by name, laid out back to back, the header padded with
/// spaces to a multiple of 8 bytes (as the reference writer does). The file is written under a
/// temporary name in the same folder, flushed, then renamed, so readers never see a partial file.
public enum SafetensorsWriter {
  public static func write(_ tensors: [String: StoredTensor], metadata: [String: String] = [:], to path: String)
    throws
  {
    let (names, headerBytes) = try header(tensors, metadata: metadata, path: path)
    try AtomicFile.write(to: path) { sink in
      var len = UInt64(headerBytes.count).littleEndian
      try withUnsafeBytes(of: &len) { try sink($0) }
      try headerBytes.withUnsafeBytes { try sink($0) }
      for name in names {
        if let t = tensors[name] { try sink(t.bytes) }
      }
    }
  }

  /// The bytes `write` would put in a file: equal tensors and metadata give equal bytes (cache artifacts).
  public static func encode(_ tensors: [String: StoredTensor], metadata: [String: String] = [:]) throws -> Data {
    let (names, headerBytes) = try header(tensors, metadata: metadata, path: "<memory>")
    var data = Data()
    var len = UInt64(headerBytes.count).littleEndian
    withUnsafeBytes(of: &len) { data.append(contentsOf: $0) }
    data.append(contentsOf: headerBytes)
    for name in names {
      if let t = tensors[name] { data.append(contentsOf: t.bytes) }
    }
    return data
  }

  /// Sorted tensor names and the padded JSON header.
  static func header(_ tensors: [String: StoredTensor], metadata: [String: String], path: String) throws
    -> ([String], [UInt8])
  {
    let names = tensors.keys.sorted()
    var header = "{"
    var first = true
    if !metadata.isEmpty {
      header += jsonString("__metadata__") + ":{"
      header += metadata.keys.sorted().map { jsonString($0) + ":" + jsonString(metadata[$0] ?? "") }
        .joined(separator: ",")
      header += "}"
      first = false
    }
    var offset = 0
    for name in names {
      guard name != "__metadata__" else {
        throw ModelIOError.unwritable(path: path, reason: "'__metadata__' cannot name a tensor")
      }
      guard let t = tensors[name] else { continue }
      let n = t.byteCount
      if !first { header += "," }
      first = false
      header +=
        jsonString(name) + ":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":["
        + t.shape.map(String.init).joined(separator: ",") + "],\"data_offsets\":[\(offset),\(offset + n)]}"
      offset += n
    }
    header += "}"
    var headerBytes = Array(header.utf8)
    while (8 + headerBytes.count) % 8 != 0 { headerBytes.append(UInt8(ascii: " ")) }
    return (names, headerBytes)
  }

  static func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
      switch u {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if u.value < 0x20 {
          out += String(format: "\\u%04x", u.value)
        } else {
          out.unicodeScalars.append(u)
        }
      }
    }
    return out + "\""
  }
}

/// Temp file + fsync + rename in the destination folder.
enum AtomicFile {
  static func write(to path: String, _ body: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent().path
    let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    guard fd >= 0 else { throw ModelIOError.unwritable(path: path, reason: String(cString: strerror(errno))) }
    var ok = false
    defer {
      if !ok {
        close(fd)
        unlink(tmp)
      }
    }
    try body { chunk in
      var done = 0
      while done < chunk.count {
        guard let baseAddress = chunk.baseAddress else { return }
        let n = Foundation.write(fd, baseAddress + done, min(chunk.count - done, 1 << 30))
        if n < 0 {
          if errno == EINTR { continue }
          throw ModelIOError.unwritable(path: path, reason: String(cString: strerror(errno)))
        }
        done += n
      }
    }
    guard fsync(fd) == 0 else { throw ModelIOError.unwritable(path: path, reason: "fsync failed") }
    ok = true
    close(fd)
    guard rename(tmp, path) == 0 else {
      let reason = String(cString: strerror(errno))
      unlink(tmp)
      throw ModelIOError.unwritable(path: path, reason: reason)
    }
  }
}
