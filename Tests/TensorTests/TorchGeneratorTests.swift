import Foundation
import XCTest

@testable import Tensor

/// TorchGenerator against PyTorch's CPU generator, bit for bit. The golden values come from
/// Tests/tools/make_rng_golden.py (torch 2.15.0); see Tests/Fixtures/rng/README.md.
final class TorchGeneratorTests: XCTestCase {
  // MARK: - Fixture

  struct Golden: Decodable {
    let torch_version: String
    let seeds: [UInt64]
    let kernels: [String: KernelGolden]
  }

  struct KernelGolden: Decodable {
    let capability: String
    let cases: [Case]
    let large: [Large]
    let mixed: Mixed
    let seed_low32_equivalent: Bool
    let sweeps: Sweeps
  }

  struct Case: Decodable {
    let seed: UInt64
    let shape: [Int]
    let randn: [UInt32]
    let rand: [UInt32]
  }

  struct Large: Decodable {
    let seed: UInt64
    let shape: [Int]
    let randn_checksum: String
    let randn_samples: [[Int]]
  }

  struct Mixed: Decodable {
    struct Step: Decodable {
      let op: String
      let shape: [Int]
      let values: [UInt32]
    }
    let seed: UInt64
    let steps: [Step]
  }

  struct Sweeps: Decodable {
    let chunk_k: Int
    let radius_k_for_angle: Int
    let radius: [String]
    let angle: [String]
  }

  static let golden: Result<Golden, Error> = Result {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("Fixtures/rng/golden.json")
    return try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
  }

  func fixture(_ kernel: TorchGenerator.NormalKernel) throws -> KernelGolden {
    let golden = try Self.golden.get()
    let name = kernel == .avx2 ? "avx2" : "scalar"
    return try XCTUnwrap(golden.kernels[name], "no \(name) kernel in the fixture")
  }

  /// The kernels whose golden values this platform can reproduce: the scalar kernel calls the C
  /// library's logf/cosf/sinf, and the fixture was made with glibc's.
  static var checkedKernels: [TorchGenerator.NormalKernel] {
    #if os(Linux)
      return [.avx2, .scalar]
    #else
      return [.avx2]
    #endif
  }

  // MARK: - Helpers

  /// Mirrors checksum() of make_rng_golden.py: Σ words[i]·((i·G + C) | 1) mod 2⁶⁴.
  static func checksum<C: Collection>(_ words: C) -> UInt64 where C.Element == UInt32 {
    var sum: UInt64 = 0
    var i: UInt64 = 0
    for word in words {
      let weight = (i &* 0x9E37_79B9_7F4A_7C15 &+ 0x632B_E59B_D9B4_E019) | 1
      sum = sum &+ UInt64(word) &* weight
      i += 1
    }
    return sum
  }

  static func bits(_ t: Tensor) -> [UInt32] { t.data.map(\.bitPattern) }

  /// Fails with the number of differing elements and the largest absolute difference.
  func assertBitEqual(
    _ got: [UInt32], _ expected: [UInt32], _ what: String, file: StaticString = #filePath, line: UInt = #line
  ) {
    guard got.count == expected.count else {
      XCTFail("\(what): \(got.count) values, expected \(expected.count)", file: file, line: line)
      return
    }
    var differing = 0
    var maxDiff: Float = 0
    for (a, b) in zip(got, expected) where a != b {
      differing += 1
      maxDiff = max(maxDiff, abs(Float(bitPattern: a) - Float(bitPattern: b)))
    }
    if differing > 0 {
      XCTFail(
        "\(what): \(differing) of \(got.count) values differ, max |diff| \(maxDiff)", file: file, line: line)
    }
  }

  // MARK: - Engine

  func testMersenneTwisterMatchesReferenceSequence() {
    // The C++ standard ([rand.predef]) fixes the 10000th output of default-seeded mt19937: 4123659995.
    var engine = MersenneTwister(seed: 5489)
    XCTAssertEqual(engine.next(), 3_499_211_612)
    for _ in 2..<10000 { _ = engine.next() }
    XCTAssertEqual(engine.next(), 4_123_659_995)
  }

  func testNextUInt64IsTwoDrawsHighFirst() {
    var a = TorchGenerator(seed: 7)
    var b = TorchGenerator(seed: 7)
    let high = UInt64(b.nextUInt32())
    let low = UInt64(b.nextUInt32())
    XCTAssertEqual(a.nextUInt64(), high << 32 | low)
  }

  func testSeedUsesLow32BitsLikeTorch() throws {
    XCTAssertTrue(try fixture(.avx2).seed_low32_equivalent, "torch no longer seeds with the low 32 bits")
    var a = TorchGenerator(seed: (1 << 32) + 5)
    var b = TorchGenerator(seed: 5)
    XCTAssertEqual(a.randn([40]), b.randn([40]))
    XCTAssertEqual(a.seed, (1 << 32) + 5)
  }

  func testNegativeExtentDrawsNothing() {
    var a = TorchGenerator(seed: 3)
    let empty = a.randn([2, -1])
    XCTAssertEqual(empty.count, 0)
    XCTAssertEqual(a.rand([-4]).count, 0)
    var b = TorchGenerator(seed: 3)
    XCTAssertEqual(a.nextUInt32(), b.nextUInt32())
  }

  // MARK: - Against torch

  func testSmallAndBlockShapesMatchTorch() throws {
    for kernel in Self.checkedKernels {
      let golden = try fixture(kernel)
      XCTAssertEqual(Set(golden.cases.map(\.seed)), Set(try Self.golden.get().seeds))
      for c in golden.cases {
        var g = TorchGenerator(seed: c.seed, normalKernel: kernel)
        let n = g.randn(c.shape)
        XCTAssertEqual(n.shape, c.shape)
        assertBitEqual(Self.bits(n), c.randn, "\(kernel) randn seed \(c.seed) shape \(c.shape)")
        var h = TorchGenerator(seed: c.seed, normalKernel: kernel)
        assertBitEqual(Self.bits(h.rand(c.shape)), c.rand, "rand seed \(c.seed) shape \(c.shape)")
      }
    }
  }

  func testLatentSizedNoiseMatchesTorch() throws {
    for kernel in Self.checkedKernels {
      for c in try fixture(kernel).large {
        var g = TorchGenerator(seed: c.seed, normalKernel: kernel)
        let words = Self.bits(g.randn(c.shape))
        let what = "\(kernel) randn seed \(c.seed) shape \(c.shape)"
        XCTAssertEqual(String(Self.checksum(words)), c.randn_checksum, what)
        for sample in c.randn_samples {
          XCTAssertEqual(words[sample[0]], UInt32(sample[1]), "\(what) element \(sample[0])")
        }
      }
    }
  }

  func testMixedSequenceContinuesTheStreamLikeTorch() throws {
    for kernel in Self.checkedKernels {
      let mixed = try fixture(kernel).mixed
      var g = TorchGenerator(seed: mixed.seed, normalKernel: kernel)
      for (i, step) in mixed.steps.enumerated() {
        let t = step.op == "randn" ? g.randn(step.shape) : g.rand(step.shape)
        assertBitEqual(Self.bits(t), step.values, "\(kernel) step \(i): \(step.op)(\(step.shape))")
      }
    }
  }

  /// Every 24-bit uniform through the float32 Box–Muller, against torch's checksums of the same sweep:
  /// "radius" puts u1 = k/2²⁴ for every k with u2 = 0, "angle" every u2 = k/2²⁴ with a radius of 1.
  func testBoxMullerMatchesTorchForEveryUniform() throws {
    for kernel in Self.checkedKernels {
      let sweeps = try fixture(kernel).sweeps
      let chunks = sweeps.radius.count
      XCTAssertEqual(chunks * sweeps.chunk_k, 1 << 24)
      XCTAssertEqual(sweeps.angle.count, chunks)
      let fixedRadius = Float(sweeps.radius_k_for_angle) * 0x1p-24
      var radiusSums = [UInt64](repeating: 0, count: chunks)
      var angleSums = [UInt64](repeating: 0, count: chunks)
      radiusSums.withUnsafeMutableBufferPointer { radiusOut in
        angleSums.withUnsafeMutableBufferPointer { angleOut in
          let radiusPointer = radiusOut.baseAddress!
          let anglePointer = angleOut.baseAddress!
          DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            var radius = [Float](repeating: 0, count: 2 * sweeps.chunk_k)
            var angle = radius
            for block in 0..<(sweeps.chunk_k / 8) {
              for lane in 0..<8 {
                let u = Float(chunk * sweeps.chunk_k + block * 8 + lane) * 0x1p-24
                radius[block * 16 + lane] = u
                radius[block * 16 + 8 + lane] = 0
                angle[block * 16 + lane] = fixedRadius
                angle[block * 16 + 8 + lane] = u
              }
            }
            radius.withUnsafeMutableBufferPointer { p in
              for block in 0..<(sweeps.chunk_k / 8) {
                TorchGenerator.boxMuller16(p.baseAddress! + block * 16, kernel: kernel)
              }
            }
            angle.withUnsafeMutableBufferPointer { p in
              for block in 0..<(sweeps.chunk_k / 8) {
                TorchGenerator.boxMuller16(p.baseAddress! + block * 16, kernel: kernel)
              }
            }
            radiusPointer[chunk] = Self.checksum(radius.lazy.map(\.bitPattern))
            anglePointer[chunk] = Self.checksum(angle.lazy.map(\.bitPattern))
          }
        }
      }
      let badRadius = (0..<chunks).filter { String(radiusSums[$0]) != sweeps.radius[$0] }
      let badAngle = (0..<chunks).filter { String(angleSums[$0]) != sweeps.angle[$0] }
      XCTAssertEqual(badRadius, [], "\(kernel): radius sweep differs in chunks of \(sweeps.chunk_k) values of k")
      XCTAssertEqual(badAngle, [], "\(kernel): angle sweep differs in chunks of \(sweeps.chunk_k) values of k")
    }
  }
}
