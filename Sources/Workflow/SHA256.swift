import Foundation

/// SHA-256 as specified in FIPS 180-4 (§4.1.2 functions, §4.2.2 constants, §5.1.1 padding, §6.2.2 computation).
/// Written for throughput on large model files: whole 64-byte blocks are compressed straight from the
/// caller's buffer, and the message schedule lives in a fixed tuple-free stack buffer.
public struct SHA256: Sendable {
  /// §4.2.2: the first 32 bits of the fractional parts of the cube roots of the first 64 primes.
  private static let k: [UInt32] = [
    0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
    0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
    0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
    0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
    0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
    0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
    0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
    0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
  ]

  /// §5.3.3 initial hash value.
  private var h: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) = (
    0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19
  )
  private var buffer = [UInt8](repeating: 0, count: 64)
  private var buffered = 0
  private var length: UInt64 = 0

  public init() {}

  public mutating func update(_ data: Data) {
    data.withUnsafeBytes { update($0) }
  }

  public mutating func update(_ string: String) {
    var copy = string
    copy.withUTF8 { update(UnsafeRawBufferPointer($0)) }
  }

  public mutating func update(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { update($0) }
  }

  public mutating func update(_ bytes: UnsafeRawBufferPointer) {
    guard var pointer = bytes.baseAddress, bytes.count > 0 else { return }
    var remaining = bytes.count
    length &+= UInt64(remaining)
    if buffered > 0 {
      let take = min(64 - buffered, remaining)
      buffer.withUnsafeMutableBytes { dst in
        (dst.baseAddress! + buffered).copyMemory(from: pointer, byteCount: take)
      }
      buffered += take
      pointer += take
      remaining -= take
      if buffered == 64 {
        let copy = buffer
        copy.withUnsafeBytes { compress($0.baseAddress!, blocks: 1) }
        buffered = 0
      }
    }
    let whole = remaining / 64
    if whole > 0 {
      compress(pointer, blocks: whole)
      pointer += whole * 64
      remaining -= whole * 64
    }
    if remaining > 0 {
      buffer.withUnsafeMutableBytes { dst in
        dst.baseAddress!.copyMemory(from: pointer, byteCount: remaining)
      }
      buffered = remaining
    }
  }

  /// §5.1.1 padding, then the final 32-byte digest (big-endian words).
  public mutating func finalize() -> [UInt8] {
    let bitLength = length &* 8
    var pad: [UInt8] = [0x80]
    let padZeros = (buffered < 56 ? 55 - buffered : 119 - buffered)
    pad += [UInt8](repeating: 0, count: padZeros)
    for shift in stride(from: 56, through: 0, by: -8) {
      pad.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift)))
    }
    let savedLength = length
    update(pad)
    length = savedLength
    var out = [UInt8]()
    out.reserveCapacity(32)
    for word in [h.0, h.1, h.2, h.3, h.4, h.5, h.6, h.7] {
      out += [UInt8(word >> 24), UInt8((word >> 16) & 0xff), UInt8((word >> 8) & 0xff), UInt8(word & 0xff)]
    }
    return out
  }

  public mutating func finalizeHex() -> String { Self.hex(finalize()) }

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

  @inline(__always) private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 &- n)) }

  /// One round: T1 = h + Σ1(e) + Ch(e,f,g) + K + W; T2 = Σ0(a) + Maj(a,b,c); d += T1; h = T1 + T2.
  @inline(__always)
  private static func round(
    _ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: inout UInt32, _ e: UInt32, _ f: UInt32, _ g: UInt32,
    _ h: inout UInt32, _ k: UInt32, _ w: UInt32
  ) {
    let t1 = h &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ k &+ w
    let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
    d &+= t1
    h = t1 &+ t2
  }

  /// §6.2.2 for `blocks` consecutive 64-byte blocks at `pointer`.
  private mutating func compress(_ pointer: UnsafeRawPointer, blocks: Int) {
    var (h0, h1, h2, h3, h4, h5, h6, h7) = h
    Self.k.withUnsafeBufferPointer { k in
      withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in
        for block in 0..<blocks {
          let base = pointer + block * 64
          for t in 0..<16 {
            w[t] = UInt32(bigEndian: base.loadUnaligned(fromByteOffset: t * 4, as: UInt32.self))
          }
          for t in 16..<64 {
            let x = w[t - 15]
            let y = w[t - 2]
            let s0 = Self.rotr(x, 7) ^ Self.rotr(x, 18) ^ (x >> 3)
            let s1 = Self.rotr(y, 17) ^ Self.rotr(y, 19) ^ (y >> 10)
            w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
          }
          var a = h0
          var b = h1
          var c = h2
          var d = h3
          var e = h4
          var f = h5
          var g = h6
          var hh = h7
          // Eight rounds per iteration with the variables renamed instead of shifted (§6.2.2 step 3).
          var t = 0
          while t < 64 {
            Self.round(a, b, c, &d, e, f, g, &hh, k[t], w[t])
            Self.round(hh, a, b, &c, d, e, f, &g, k[t + 1], w[t + 1])
            Self.round(g, hh, a, &b, c, d, e, &f, k[t + 2], w[t + 2])
            Self.round(f, g, hh, &a, b, c, d, &e, k[t + 3], w[t + 3])
            Self.round(e, f, g, &hh, a, b, c, &d, k[t + 4], w[t + 4])
            Self.round(d, e, f, &g, hh, a, b, &c, k[t + 5], w[t + 5])
            Self.round(c, d, e, &f, g, hh, a, &b, k[t + 6], w[t + 6])
            Self.round(b, c, d, &e, f, g, hh, &a, k[t + 7], w[t + 7])
            t += 8
          }
          h0 &+= a
          h1 &+= b
          h2 &+= c
          h3 &+= d
          h4 &+= e
          h5 &+= f
          h6 &+= g
          h7 &+= hh
        }
      }
    }
    h = (h0, h1, h2, h3, h4, h5, h6, h7)
  }

  /// Hashes a file by streaming it in 4 MiB reads (never loads it whole).
  public static func hashFile(atPath path: String) throws -> String {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else {
      throw WorkflowError.io(path: path, message: "cannot open: \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    var hasher = SHA256()
    let chunk = 4 << 20
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
    defer { buffer.deallocate() }
    while true {
      let n = read(fd, buffer, chunk)
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
