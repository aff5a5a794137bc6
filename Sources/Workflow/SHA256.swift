import Crypto
import Foundation

/// SHA-256 (FIPS 180-4) for cache keys, object names and model file digests, on swift-crypto
/// (BoringSSL underneath, which uses the CPU's SHA extensions where it has them). This wrapper keeps the
/// project's small API: hex digests, incremental updates, and files streamed in 4 MiB reads.
public struct SHA256: Sendable {
  private var state = Crypto.SHA256()

  public init() {}

  public mutating func update(_ data: Data) {
    state.update(data: data)
  }

  public mutating func update(_ string: String) {
    var copy = string
    copy.withUTF8 { state.update(bufferPointer: UnsafeRawBufferPointer($0)) }
  }

  public mutating func update(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { state.update(bufferPointer: $0) }
  }

  public mutating func update(_ bytes: UnsafeRawBufferPointer) {
    state.update(bufferPointer: bytes)
  }

  /// The 32-byte digest of everything passed to `update` so far.
  public func finalize() -> [UInt8] { Array(state.finalize()) }

  public func finalizeHex() -> String { Self.hex(finalize()) }

  public static func hash(_ data: Data) -> String {
    var hasher = SHA256()
    hasher.update(data)
    return hasher.finalizeHex()
  }

  public static func hash(_ string: String) -> String {
    var hasher = SHA256()
    hasher.update(string)
    return hasher.finalizeHex()
  }

  private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

  public static func hex(_ bytes: [UInt8]) -> String {
    var chars = [UInt8]()
    chars.reserveCapacity(bytes.count * 2)
    for byte in bytes {
      chars.append(hexDigits[Int(byte >> 4)])
      chars.append(hexDigits[Int(byte & 0xf)])
    }
    return String(decoding: chars, as: UTF8.self)
  }

  /// Bytes per read when hashing a file: large enough that syscalls cost nothing next to the hashing,
  /// small enough to check for cancellation a few hundred times a second.
  public static let fileChunkBytes = 4 << 20

  /// Hashes a regular file by streaming it in 4 MiB reads (never loads it whole). The file is opened
  /// non-blocking and its type checked before the first read, so a FIFO or a device is refused instead of
  /// blocking or never ending. With a `cancellation` token, throws `CancelledError` between chunks once it
  /// is set.
  public static func hashFile(atPath path: String, cancellation: CancellationToken? = nil) throws -> String {
    let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard fd >= 0 else {
      throw WorkflowError.io(path: path, message: "cannot open: \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else {
      throw WorkflowError.io(path: path, message: "cannot stat: \(String(cString: strerror(errno)))")
    }
    guard info.st_mode & S_IFMT == S_IFREG else {
      let kind = info.st_mode & S_IFMT == S_IFDIR ? "a directory" : "not a regular file"
      throw WorkflowError.io(path: path, message: "cannot hash: \(kind) (only regular files are hashed)")
    }
    var hasher = SHA256()
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: fileChunkBytes, alignment: 64)
    defer { buffer.deallocate() }
    while true {
      if let cancellation, cancellation.isCancelled { throw CancelledError() }
      let n = read(fd, buffer, fileChunkBytes)
      if n < 0 {
        if errno == EINTR { continue }
        throw WorkflowError.io(path: path, message: "read failed: \(String(cString: strerror(errno)))")
      }
      if n == 0 { break }
      hasher.update(UnsafeRawBufferPointer(start: buffer, count: n))
    }
    return hasher.finalizeHex()
  }
}
