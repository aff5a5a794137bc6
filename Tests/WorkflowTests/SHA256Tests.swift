import Foundation
import XCTest

@testable import Workflow

/// Vectors from FIPS 180-2 Appendix B / NIST "SHA256.pdf" examples and the NIST CAVP short-message set.
final class SHA256Tests: XCTestCase {
  func testFIPSVectors() {
    XCTAssertEqual(SHA256.hash(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    XCTAssertEqual(SHA256.hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    XCTAssertEqual(
      SHA256.hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    XCTAssertEqual(
      SHA256.hash(
        "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
      ),
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
  }

  func testMillionA() {
    XCTAssertEqual(
      SHA256.hash(Data(repeating: UInt8(ascii: "a"), count: 1_000_000)),
      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
  }

  /// Lengths around the 55/56/64-byte padding boundaries, fed in one piece and in uneven pieces, must agree;
  /// the one-piece digests of 0…130 'a's are checked against the CAVP-style values computed by `sha256sum`
  /// for three of them.
  func testPaddingBoundariesAndStreaming() {
    let known = [
      55: "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
      56: "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
      64: "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb",
    ]
    for n in 0...130 {
      let data = Data(repeating: UInt8(ascii: "a"), count: n)
      let whole = SHA256.hash(data)
      if let expected = known[n] { XCTAssertEqual(whole, expected, "length \(n)") }
      var hasher = SHA256()
      var offset = 0
      var step = 1
      while offset < n {
        let end = min(n, offset + step)
        hasher.update(data.subdata(in: offset..<end))
        offset = end
        step = step * 3 % 71 + 1
      }
      XCTAssertEqual(hasher.finalizeHex(), whole, "length \(n)")
    }
  }

  func testFileHashMatchesInMemory() throws {
    let dir = TempDir()
    var bytes = [UInt8](repeating: 0, count: 9 << 20 + 17)
    var state: UInt64 = 42
    for i in bytes.indices {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      bytes[i] = UInt8(truncatingIfNeeded: state >> 33)
    }
    let path = dir.path("blob")
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    XCTAssertEqual(try SHA256.hashFile(atPath: path), SHA256.hash(Data(bytes)))
  }

  /// A file that spans three 4 MiB reads, against a digest computed outside CogFlow
  /// (`sha256sum` and Python's hashlib agree: byte i = (31·i + i/4096) mod 256, 9 MiB + 17 bytes).
  func testFileKnownAnswerAcrossReadBoundaries() throws {
    let dir = TempDir()
    let count = 9 << 20 + 17
    var bytes = [UInt8](repeating: 0, count: count)
    for i in 0..<count { bytes[i] = UInt8(truncatingIfNeeded: i &* 31 &+ (i >> 12)) }
    let path = dir.path("kat")
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    XCTAssertEqual(
      try SHA256.hashFile(atPath: path), "ad3aad9d110a0da45ee7ad463f0afcea1f68ea586e9a340fc1238101cfca15a5")
  }

  func testCancelledTokenStopsHashing() throws {
    let dir = TempDir()
    let path = dir.path("blob")
    try Data(count: 1 << 20).write(to: URL(fileURLWithPath: path))
    let token = CancellationToken()
    token.cancel()
    XCTAssertThrowsError(try SHA256.hashFile(atPath: path, cancellation: token)) { error in
      XCTAssertTrue(error is CancelledError, "\(error)")
    }
    XCTAssertEqual(try SHA256.hashFile(atPath: path, cancellation: CancellationToken()).count, 64)
  }

  /// A FIFO would block a plain open and never end; it is refused at once, as is a directory.
  func testOnlyRegularFilesAreHashed() throws {
    let dir = TempDir()
    let fifo = dir.path("fifo")
    XCTAssertEqual(mkfifo(fifo, 0o600), 0)
    XCTAssertThrowsError(try SHA256.hashFile(atPath: fifo)) { error in
      XCTAssertTrue("\(error)".contains("not a regular file"), "\(error)")
    }
    XCTAssertThrowsError(try SHA256.hashFile(atPath: dir.url.path)) { error in
      XCTAssertTrue("\(error)".contains("a directory"), "\(error)")
    }
  }
}
