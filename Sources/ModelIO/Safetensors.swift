import Foundation
import Tensor

/// A memory-mapped safetensors file: an 8-byte little-endian header length, a JSON header
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`, then the data section.
/// Tensor bytes are touched only when a tensor is used.
///
/// Minimal first version: maps the file and parses the header; full validation comes with the
/// model-files issue.
public final class SafetensorsFile: TensorSource, @unchecked Sendable {
  public let location: String
  public let metadata: [String: String]
  private let entries: [String: (dtype: DType, shape: [Int], begin: Int, end: Int)]
  private let storage: ByteStorage
  private let dataStart: Int

  public init(path: String) throws {
    location = path
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw ModelIOError.unreadable(path: path, reason: String(cString: strerror(errno))) }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw ModelIOError.unreadable(path: path, reason: "stat failed") }
    let size = Int(st.st_size)
    guard size >= 8 else { throw ModelIOError.malformed(path: path, tensor: nil, reason: "file shorter than 8 bytes") }
    guard let map = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else {
      throw ModelIOError.unreadable(path: path, reason: "mmap failed")
    }
    storage = ByteStorage(borrowing: UnsafeRawPointer(map), byteCount: size) { munmap(map, size) }
    let headerLen = Int(UInt64(littleEndian: storage.base.loadUnaligned(as: UInt64.self)))
    guard headerLen <= size - 8 else {
      throw ModelIOError.malformed(path: path, tensor: nil, reason: "header length \(headerLen) exceeds the file")
    }
    dataStart = 8 + headerLen
    let headerData = Data(bytes: storage.base + 8, count: headerLen)
    guard let json = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
      throw ModelIOError.malformed(path: path, tensor: nil, reason: "header is not a JSON object")
    }
    var meta: [String: String] = [:]
    var found: [String: (DType, [Int], Int, Int)] = [:]
    for (name, value) in json {
      if name == "__metadata__" {
        for (k, v) in (value as? [String: Any]) ?? [:] { meta[k] = v as? String }
        continue
      }
      guard let obj = value as? [String: Any], let ds = obj["dtype"] as? String, let dtype = DType(rawValue: ds),
        let shape = obj["shape"] as? [Int], let offs = obj["data_offsets"] as? [Int], offs.count == 2
      else { throw ModelIOError.malformed(path: path, tensor: name, reason: "bad header entry") }
      guard offs[0] >= 0, offs[0] <= offs[1], offs[1] <= size - dataStart,
        offs[1] - offs[0] == shape.elementCount * dtype.byteSize
      else { throw ModelIOError.malformed(path: path, tensor: name, reason: "data offsets \(offs) do not fit") }
      found[name] = (dtype, shape, offs[0], offs[1])
    }
    metadata = meta
    entries = found.mapValues { (dtype: $0.0, shape: $0.1, begin: $0.2, end: $0.3) }
  }

  public var keys: [String] { entries.keys.sorted() }

  public func stored(_ key: String) throws -> StoredTensor {
    guard let e = entries[key] else { throw ModelIOError.missingTensor(path: location, key: key) }
    return try StoredTensor(dtype: e.dtype, shape: e.shape, storage: storage, offset: dataStart + e.begin)
  }
}
