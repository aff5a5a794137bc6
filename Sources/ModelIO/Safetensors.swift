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

  /// Occurrences of an ASCII needle in bytes (linear; the needle has no repeated prefix).
  static func occurrences(of needle: String, in bytes: UnsafeRawBufferPointer) -> Int {
    let n = Array(needle.utf8)
    guard let first = n.first, bytes.count >= n.count else { return 0 }
    var count = 0
    var i = 0
    let last = bytes.count - n.count
    while i <= last {
      if bytes[i] == first {
        var j = 1
        while j < n.count && bytes[i + j] == n[j] { j += 1 }
        if j == n.count {
          count += 1
          i += n.count
          continue
        }
      }
      i += 1
    }
    return count
  }

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
    // Bound the tensor count before building anything from the JSON: every entry needs a "data_offsets".
    let tensorCount = Self.occurrences(of: "\"data_offsets\"", in: UnsafeRawBufferPointer(start: base + 8, count: headerLen))
    guard tensorCount <= maxTensors else {
      throw bad(
        nil,
        "header lists more than \(maxTensors) tensors (raise COGFLOW_MAX_TENSORS if this is intended)")
    }
    let headerData = Data(bytes: base + 8, count: headerLen)
    let parsed: Any
    do {
      parsed = try JSONSerialization.jsonObject(with: headerData)
    } catch {
      throw bad(nil, "header is not valid JSON")
    }
    guard let json = parsed as? [String: Any] else { throw bad(nil, "header is not a JSON object") }

    var metadata: [String: String] = [:]
    var entries: [String: Entry] = [:]
    entries.reserveCapacity(json.count)
    for (name, value) in json {
      if name == "__metadata__" {
        guard let meta = value as? [String: Any] else { throw bad(nil, "__metadata__ is not an object") }
        for (k, v) in meta {
          guard let s = v as? String else { throw bad(nil, "__metadata__ value for '\(k)' is not a string") }
          metadata[k] = s
        }
        continue
      }
      guard let obj = value as? [String: Any] else { throw bad(name, "header entry is not an object") }
      guard let ds = obj["dtype"] as? String else { throw bad(name, "missing dtype") }
      guard let dtype = DType(rawValue: ds) else {
        throw ModelIOError.unsupported(path: path, tensor: name, reason: "dtype \(ds)")
      }
      guard let shapeAny = obj["shape"] as? [Any], let shape = Self.integers(shapeAny),
        shape.allSatisfy({ $0 >= 0 })
      else { throw bad(name, "shape is not a list of non-negative integers") }
      guard let offAny = obj["data_offsets"] as? [Any], let offs = Self.integers(offAny), offs.count == 2 else {
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

  /// JSON numbers written as integers (rejects 1.5, 2.0, booleans and values beyond Int64).
  private static func integers(_ values: [Any]) -> [Int]? {
    var out: [Int] = []
    out.reserveCapacity(values.count)
    for v in values {
      // Foundation tags parsed integers with a signed C type code, booleans with "c", decimals "d".
      guard let n = v as? NSNumber, ["i", "l", "q", "s"].contains(String(cString: n.objCType)),
        let i = v as? Int
      else { return nil }
      out.append(i)
    }
    return out
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
