import Foundation
import Tensor

/// A whole file mapped read-only. Pages are read from disk only when touched, so opening a
/// multi-gigabyte checkpoint costs its header, not its size. Storages cut from it keep it alive.
final class MappedFile: @unchecked Sendable {
  let path: String
  let base: UnsafeRawPointer
  let size: Int
  private let mapped: Bool

  init(path: String) throws {
    self.path = path
    let (fd, fileSize) = try openRegularFile(path)
    defer { close(fd) }
    size = fileSize
    if size == 0 {
      // mmap refuses length 0; an empty file still needs a valid base address.
      base = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 16))
      mapped = false
      return
    }
    guard let map = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else {
      throw ModelIOError.unreadable(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
    }
    base = UnsafeRawPointer(map)
    mapped = true
  }

  /// A heap copy of `bytes` standing in for a file (fuzzing, tests, archives held in memory).
  init(copying bytes: UnsafeRawBufferPointer, name: String) {
    path = name
    size = bytes.count
    let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
    if let src = bytes.baseAddress, bytes.count > 0 { p.copyMemory(from: src, byteCount: bytes.count) }
    base = UnsafeRawPointer(p)
    mapped = false
  }

  deinit {
    if mapped {
      munmap(UnsafeMutableRawPointer(mutating: base), size)
    } else {
      UnsafeMutableRawPointer(mutating: base).deallocate()
    }
  }

  /// The whole mapping as a storage that keeps this file mapped while any tensor uses it.
  func storage() -> ByteStorage {
    ByteStorage(borrowing: base, byteCount: size) { withExtendedLifetime(self) {} }
  }

  /// A bounds-checked view of `count` bytes at `offset`, or nil when the range leaves the file.
  func bytes(at offset: Int, count: Int) -> UnsafeRawBufferPointer? {
    guard offset >= 0, count >= 0, offset <= size, count <= size - offset else { return nil }
    return UnsafeRawBufferPointer(start: base + offset, count: count)
  }
}

/// Little-endian reads from a bounds-checked byte buffer.
extension UnsafeRawBufferPointer {
  @inline(__always)
  func le16(_ at: Int) -> UInt16 { UInt16(self[at]) | UInt16(self[at + 1]) << 8 }
  @inline(__always)
  func le32(_ at: Int) -> UInt32 { UInt32(le16(at)) | UInt32(le16(at + 2)) << 16 }
  @inline(__always)
  func le64(_ at: Int) -> UInt64 { UInt64(le32(at)) | UInt64(le32(at + 4)) << 32 }
}

/// Element count of a shape with overflow checked; nil for negative extents or overflow.
func checkedElementCount(_ shape: [Int]) -> Int? {
  var n = 1
  for d in shape {
    guard d >= 0 else { return nil }
    let (p, o) = n.multipliedReportingOverflow(by: d)
    if o { return nil }
    n = p
  }
  return n
}

/// Byte count of `shape` in `dtype`, nil on overflow.
func checkedByteCount(_ shape: [Int], _ dtype: DType) -> Int? {
  guard let n = checkedElementCount(shape) else { return nil }
  let (b, o) = n.multipliedReportingOverflow(by: dtype.byteSize)
  return o ? nil : b
}

/// "a directory", "a FIFO (named pipe)", … for a `st_mode`.
func fileKindName(_ mode: mode_t) -> String {
  switch mode & S_IFMT {
  case S_IFREG: return "a regular file"
  case S_IFDIR: return "a directory"
  case S_IFIFO: return "a FIFO (named pipe)"
  case S_IFCHR: return "a character device"
  case S_IFBLK: return "a block device"
  case S_IFSOCK: return "a socket"
  default: return "not a regular file"
  }
}

/// Opens a file for reading only if it is a regular file: the descriptor is opened without blocking and its
/// type checked with fstat before any read, so a FIFO or a device fails at once instead of hanging or never
/// ending. The caller closes the descriptor.
func openRegularFile(_ path: String) throws -> (fd: Int32, size: Int) {
  let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
  guard fd >= 0 else {
    let reason = errno == ENOENT ? "no such file or folder" : String(cString: strerror(errno))
    throw ModelIOError.unreadable(path: path, reason: reason)
  }
  var st = stat()
  guard fstat(fd, &st) == 0 else {
    close(fd)
    throw ModelIOError.unreadable(path: path, reason: "stat failed")
  }
  guard (st.st_mode & S_IFMT) == S_IFREG else {
    close(fd)
    throw ModelIOError.unreadable(path: path, reason: "\(fileKindName(st.st_mode)), not a regular file")
  }
  _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
  return (fd, Int(st.st_size))
}
