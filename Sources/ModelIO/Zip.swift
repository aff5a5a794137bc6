import CZlib
import Foundation
import Tensor

/// A read-only ZIP archive, enough for `torch.save`'s container: the central directory (ZIP64 too,
/// since multi-gigabyte checkpoints need it), stored entries read in place from the mapping, and
/// deflated entries inflated with zlib. Every offset and size is checked against the file before use.
final class ZipArchive: @unchecked Sendable {
  struct Entry {
    var name: String
    var method: UInt16
    var flags: UInt16
    var crc32: UInt32
    var compressedSize: Int
    var uncompressedSize: Int
    var dataOffset: Int
  }

  let path: String
  let file: MappedFile
  /// Entries in central-directory order.
  let entries: [Entry]
  private let index: [String: Int]

  /// Deflate cannot expand data by more than about 1032:1; a larger claimed size is a lie.
  static let maxDeflateRatio = 1100

  convenience init(path: String) throws {
    try self.init(file: MappedFile(path: path))
  }

  init(file: MappedFile) throws {
    let path = file.path
    self.path = path
    self.file = file
    let all = UnsafeRawBufferPointer(start: file.base, count: file.size)
    func bad(_ reason: String) -> ModelIOError { .malformed(path: path, tensor: nil, reason: reason) }

    // End of central directory: 22 bytes plus a comment of up to 65535 bytes at the end of the file.
    let size = all.count
    guard size >= 22 else { throw bad("not a zip archive (file too short: \(size) bytes)") }
    var eocd = -1
    var p = size - 22
    let lowest = max(0, size - 22 - 65535)
    while p >= lowest {
      if all.le32(p) == 0x0605_4b50 && p + 22 + Int(all.le16(p + 20)) == size {
        eocd = p
        break
      }
      p -= 1
    }
    guard eocd >= 0 else { throw bad("not a zip archive or truncated (no end-of-central-directory record)") }
    var count = Int(all.le16(eocd + 10))
    var cdSize = Int(all.le32(eocd + 12))
    var cdOffset = Int(all.le32(eocd + 16))
    if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
      // ZIP64: a locator just before the EOCD points at the 64-bit end record.
      let loc = eocd - 20
      guard loc >= 0, all.le32(loc) == 0x0706_4b50 else { throw bad("ZIP64 locator missing") }
      let rec64 = all.le64(loc + 8)
      guard size >= 56, rec64 <= UInt64(size - 56), all.le32(Int(rec64)) == 0x0606_4b50 else {
        throw bad("ZIP64 end record outside the file")
      }
      let r = Int(rec64)
      let c64 = all.le64(r + 32)
      let s64 = all.le64(r + 40)
      let o64 = all.le64(r + 48)
      guard c64 <= UInt64(size), s64 <= UInt64(size), o64 <= UInt64(size) else {
        throw bad("ZIP64 end record has sizes beyond the file")
      }
      count = Int(c64)
      cdSize = Int(s64)
      cdOffset = Int(o64)
    }
    guard cdOffset <= size, cdSize <= size - cdOffset else {
      throw bad("central directory [\(cdOffset), +\(cdSize)) lies outside the file (\(size) bytes; truncated?)")
    }
    guard count <= cdSize / 46 else { throw bad("central directory claims \(count) entries in \(cdSize) bytes") }

    var list: [Entry] = []
    list.reserveCapacity(count)
    var seen: [String: Int] = [:]
    var q = cdOffset
    let cdEnd = cdOffset + cdSize
    for i in 0..<count {
      guard q + 46 <= cdEnd, all.le32(q) == 0x0201_4b50 else { throw bad("central directory entry \(i) is damaged") }
      let flags = all.le16(q + 8)
      let method = all.le16(q + 10)
      let crc = all.le32(q + 16)
      var csize = UInt64(all.le32(q + 20))
      var usize = UInt64(all.le32(q + 24))
      let nameLen = Int(all.le16(q + 28))
      let extraLen = Int(all.le16(q + 30))
      let commentLen = Int(all.le16(q + 32))
      var local = UInt64(all.le32(q + 42))
      let next = q + 46 + nameLen + extraLen + commentLen
      guard next <= cdEnd else { throw bad("central directory entry \(i) runs past the directory") }
      guard let name = String(validating: all[(q + 46)..<(q + 46 + nameLen)], as: UTF8.self) else {
        throw bad("entry \(i) has a name that is not UTF-8")
      }
      // ZIP64 extra field (id 1): 64-bit values for whichever 32-bit fields are saturated, in order.
      var e = q + 46 + nameLen
      let extraEnd = e + extraLen
      while e + 4 <= extraEnd {
        let id = all.le16(e)
        let len = Int(all.le16(e + 2))
        guard e + 4 + len <= extraEnd else { throw bad("entry '\(name)' has a damaged extra field") }
        if id == 1 {
          var f = e + 4
          func take() throws -> UInt64 {
            guard f + 8 <= e + 4 + len else { throw bad("entry '\(name)' has a short ZIP64 field") }
            defer { f += 8 }
            return all.le64(f)
          }
          if usize == 0xFFFF_FFFF { usize = try take() }
          if csize == 0xFFFF_FFFF { csize = try take() }
          if local == 0xFFFF_FFFF { local = try take() }
        }
        e += 4 + len
      }
      guard size >= 30, local <= UInt64(size - 30), csize <= UInt64(size), usize <= UInt64(Int.max / 2) else {
        throw bad("entry '\(name)' points outside the file (truncated?)")
      }
      let lh = Int(local)
      guard all.le32(lh) == 0x0403_4b50 else { throw bad("entry '\(name)' has no local header (truncated?)") }
      let dataOffset = lh + 30 + Int(all.le16(lh + 26)) + Int(all.le16(lh + 28))
      guard dataOffset <= size, Int(csize) <= size - dataOffset else {
        throw bad("entry '\(name)' data [\(dataOffset), +\(csize)) runs past the end of the file (truncated?)")
      }
      guard seen[name] == nil else { throw bad("entry '\(name)' appears twice") }
      seen[name] = list.count
      list.append(
        Entry(
          name: name, method: method, flags: flags, crc32: crc, compressedSize: Int(csize),
          uncompressedSize: Int(usize), dataOffset: dataOffset))
      q = next
    }
    entries = list
    index = seen
  }

  func entry(_ name: String) -> Entry? { index[name].map { entries[$0] } }

  /// The entry's bytes: a view into the mapping for stored entries (nothing is read until used),
  /// a new heap buffer for deflated ones. `verify` checks the CRC-32, which reads every byte.
  func contents(_ e: Entry, verify: Bool) throws -> (storage: ByteStorage, offset: Int, count: Int) {
    func bad(_ reason: String) -> ModelIOError {
      .malformed(path: path, tensor: nil, reason: "entry '\(e.name)': \(reason)")
    }
    guard e.flags & 1 == 0 else {
      throw ModelIOError.unsupported(path: path, tensor: nil, reason: "encrypted entry '\(e.name)'")
    }
    switch e.method {
    case 0:
      guard e.compressedSize == e.uncompressedSize else { throw bad("stored entry with differing sizes") }
      if verify {
        let c = Self.crc32(UnsafeRawBufferPointer(start: file.base + e.dataOffset, count: e.compressedSize))
        guard c == e.crc32 else { throw bad("CRC mismatch (damaged file)") }
      }
      return (file.storage(), e.dataOffset, e.compressedSize)
    case 8:
      // Deflated entries (the pickle) are inflated into memory: refused from the directory entry above the cap.
      guard e.uncompressedSize <= Self.maxInflateBytes else {
        throw bad(
          "inflates to \(e.uncompressedSize) bytes, more than the \(Self.maxInflateBytes)-byte limit for compressed"
            + " entries (raise COGFLOW_MAX_INFLATE_BYTES if this is intended)")
      }
      let limit = e.compressedSize.multipliedReportingOverflow(by: Self.maxDeflateRatio)
      guard !limit.overflow, e.uncompressedSize <= limit.partialValue + 1024 else {
        throw bad("claims \(e.uncompressedSize) bytes from \(e.compressedSize) compressed bytes")
      }
      let out = UnsafeMutableRawPointer.allocate(byteCount: max(e.uncompressedSize, 1), alignment: 64)
      let storage = ByteStorage(borrowing: UnsafeRawPointer(out), byteCount: e.uncompressedSize) {
        out.deallocate()
      }
      let produced = try inflateRaw(
        UnsafeRawBufferPointer(start: file.base + e.dataOffset, count: e.compressedSize),
        into: UnsafeMutableRawBufferPointer(start: out, count: e.uncompressedSize), name: e.name)
      guard produced == e.uncompressedSize else {
        throw bad("inflated to \(produced) bytes, the directory says \(e.uncompressedSize)")
      }
      let c = Self.crc32(UnsafeRawBufferPointer(start: out, count: produced))
      guard c == e.crc32 else { throw bad("CRC mismatch (damaged file)") }
      return (storage, 0, produced)
    default:
      throw ModelIOError.unsupported(path: path, tensor: nil, reason: "compression method \(e.method) of '\(e.name)'")
    }
  }

  private func inflateRaw(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer, name: String)
    throws -> Int
  {
    var stream = z_stream()
    guard inflateInit2_(&stream, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
      throw ModelIOError.unreadable(path: path, reason: "zlib could not start")
    }
    defer { inflateEnd(&stream) }
    stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress?.assumingMemoryBound(to: Bytef.self))
    stream.next_out = dst.baseAddress?.assumingMemoryBound(to: Bytef.self)
    var inLeft = src.count
    var outLeft = dst.count
    // zlib counts in UInt32: hand it at most 1 GiB per call. Z_OK always means progress was made.
    while true {
      let inChunk = min(inLeft, 1 << 30)
      let outChunk = min(outLeft, 1 << 30)
      stream.avail_in = uInt(inChunk)
      stream.avail_out = uInt(outChunk)
      let rc = inflate(&stream, Z_NO_FLUSH)
      inLeft -= inChunk - Int(stream.avail_in)
      outLeft -= outChunk - Int(stream.avail_out)
      if rc == Z_STREAM_END { break }
      if rc == Z_OK { continue }
      let reason: String
      if rc == Z_BUF_ERROR && outLeft == 0 {
        reason = "inflates past its declared size"
      } else if rc == Z_BUF_ERROR && inLeft == 0 {
        reason = "deflate data ends early (truncated)"
      } else {
        reason = "corrupt deflate data (zlib \(rc))"
      }
      throw ModelIOError.malformed(path: path, tensor: nil, reason: "entry '\(name)': \(reason)")
    }
    return dst.count - outLeft
  }

  /// Largest size a deflated entry may inflate to (`COGFLOW_MAX_INFLATE_BYTES`, default 256 MiB). Tensor data
  /// in torch.save zips is stored, not deflated, so only pickles and small records meet this bound.
  static let maxInflateBytes: Int = {
    if let text = ProcessInfo.processInfo.environment["COGFLOW_MAX_INFLATE_BYTES"], let n = Int(text), n > 0 {
      return n
    }
    return 256 << 20
  }()

  static func crc32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
    var c: uLong = CZlib.crc32(0, nil, 0)
    guard let base = bytes.baseAddress else { return UInt32(truncatingIfNeeded: c) }
    var off = 0
    while off < bytes.count {
      let n = min(bytes.count - off, 1 << 30)
      c = CZlib.crc32(c, base.advanced(by: off).assumingMemoryBound(to: Bytef.self), uInt(n))
      off += n
    }
    return UInt32(truncatingIfNeeded: c)
  }
}
