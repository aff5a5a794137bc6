import XCTest

@testable import Tensor

/// float16 / bfloat16 storage: exact widening of every bit pattern, round-to-nearest-even narrowing.
final class HalfConversionTests: XCTestCase {
  func stored(_ values: [Float], _ dtype: DType) throws -> StoredTensor {
    try StoredTensor(Tensor(shape: [values.count], data: values), as: dtype)
  }

  func bits(_ s: StoredTensor) -> [UInt16] {
    Array(s.bytes.bindMemory(to: UInt16.self))
  }

  func testF16WidensEveryPatternExactlyAndRoundTrips() throws {
    var raw = [UInt16](0...UInt16.max)
    let storage = raw.withUnsafeMutableBytes { ByteStorage(copying: UnsafeRawBufferPointer($0)) }
    let s = try StoredTensor(dtype: .f16, shape: [65536], storage: storage)
    let wide = try s.toFloat32()
    var mismatches = 0
    for i in 0..<65536 {
      let h = UInt16(i)
      // Reference decoding from the IEEE 754 binary16 definition.
      let sign: Float = h & 0x8000 != 0 ? -1 : 1
      let e = Int((h >> 10) & 0x1f)
      let m = Float(h & 0x3ff)
      let expected: Float =
        e == 0
        ? sign * m * 0x1p-24
        : e == 31
          ? (m == 0 ? sign * .infinity : .nan)
          : sign * (1 + m / 1024) * Float(sign: .plus, exponent: e - 15, significand: 1)
      if expected.isNaN ? !wide.data[i].isNaN : (wide.data[i] != expected || wide.data[i].sign != expected.sign) {
        mismatches += 1
      }
    }
    XCTAssertEqual(mismatches, 0)
    // Narrowing the widened values gives the same bits back (NaNs aside).
    let back = bits(try StoredTensor(wide, as: .f16))
    for i in 0..<65536 where !wide.data[i].isNaN { XCTAssertEqual(back[i], UInt16(i)) }
    raw.removeAll()
  }

  /// Expected bits as PyTorch gives them (`torch.tensor([v]).half()` / `.bfloat16()`, checked by hand).
  func testF16NarrowingRoundsToNearestEven() throws {
    let one: Float = 1
    let values: [Float] = [
      one + 0x1p-11,  // halfway between 1 and 1+2⁻¹⁰: even → 1
      one + 3 * 0x1p-11,  // halfway between 1+2⁻¹⁰ and 1+2⁻⁹: even → 1+2⁻⁹
      one + 0x1p-11 + 0x1p-20,  // just above halfway → up
      65504, 65519, 65520, -70000,  // max, rounds down to max, rounds to ∞, −∞
      0x1p-24, 0x1p-25, 0x1.8p-25, 0x1p-26,  // smallest subnormal, ties/rounding around it
    ]
    let expected: [UInt16] = [0x3C00, 0x3C02, 0x3C01, 0x7BFF, 0x7BFF, 0x7C00, 0xFC00, 0x0001, 0x0000, 0x0001, 0x0000]
    XCTAssertEqual(bits(try stored(values, .f16)), expected)
  }

  func testBF16WidensEveryPatternAndRoundsToNearestEven() throws {
    var raw = [UInt16](0...UInt16.max)
    let storage = raw.withUnsafeMutableBytes { ByteStorage(copying: UnsafeRawBufferPointer($0)) }
    let wide = try StoredTensor(dtype: .bf16, shape: [65536], storage: storage).toFloat32()
    for i in stride(from: 0, to: 65536, by: 1) {
      XCTAssertEqual(wide.data[i].bitPattern, UInt32(i) << 16)
    }
    let back = bits(try StoredTensor(wide, as: .bf16))
    for i in 0..<65536 where !wide.data[i].isNaN { XCTAssertEqual(back[i], UInt16(i)) }
    let one: Float = 1
    let values: [Float] = [one + 0x1p-8, one + 3 * 0x1p-8, one + 0x1p-8 + 0x1p-20, .nan, -.infinity, 3.0e38]
    let b = bits(try stored(values, .bf16))
    XCTAssertEqual(Array(b[0..<3]), [0x3F80, 0x3F82, 0x3F81])
    XCTAssertTrue(Float(bitPattern: UInt32(b[3]) << 16).isNaN)
    XCTAssertEqual(b[4], 0xFF80)
    XCTAssertEqual(b[5], 0x7F62)
    raw.removeAll()
  }

  func testRandomRoundTripsWithinHalfPrecision() throws {
    var rng = TestRandom(seed: 16)
    let t = rng.tensor([1000], scale: 10)
    let f16 = try StoredTensor(t, as: .f16).toFloat32()
    let bf16 = try StoredTensor(t, as: .bf16).toFloat32()
    let f32 = try StoredTensor(t, as: .f32).toFloat32()
    XCTAssertEqual(f32, t)
    for i in 0..<t.count {
      XCTAssertLessThanOrEqual(abs(f16.data[i] - t.data[i]), abs(t.data[i]) * 0x1p-11 + 0x1p-25)
      XCTAssertLessThanOrEqual(abs(bf16.data[i] - t.data[i]), abs(t.data[i]) * 0x1p-8)
    }
  }

  func testBadStorageIsATypedError() throws {
    let t = Tensor(zeros: [4])
    XCTAssertThrowsError(try StoredTensor(t, as: .i32)) { error in
      XCTAssertEqual(
        error as? TensorError, .dtypeMismatch(op: "StoredTensor.init", expected: "F32, F16 or BF16", found: "I32"))
    }
    let storage = ByteStorage(copying: UnsafeRawBufferPointer(start: nil, count: 0))
    assertTensorError("StoredTensor") { _ = try StoredTensor(dtype: .f32, shape: [2], storage: storage) }
    let ints = try StoredTensor(dtype: .i64, shape: [0], storage: storage)
    XCTAssertThrowsError(try ints.toFloat32())
  }
}
