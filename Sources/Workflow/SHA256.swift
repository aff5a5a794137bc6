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

  /// Hashes a regular file streamed in 4 MiB reads, cancellable between reads: `DiskCache.hashRegularFile`
  /// (a FIFO, a device or a directory is refused before any read).
  public static func hashFile(atPath path: String, cancellation: CancellationToken? = nil) throws -> String {
    try DiskCache.hashRegularFile(path, cancellation: cancellation)
  }
}
