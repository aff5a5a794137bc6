import Foundation
import XCTest

@testable import Tensor

/// Deterministic random numbers for tests (splitmix64; normals by Box–Muller). Not PyTorch's
/// generator: only reproducible across runs of these tests.
struct TestRandom {
  private var state: UInt64

  init(seed: UInt64) { state = seed }

  mutating func nextUInt64() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Uniform in [0, 1).
  mutating func uniform() -> Double { Double(nextUInt64() >> 11) * 0x1p-53 }

  /// Uniform integer in `range`.
  mutating func int(_ range: ClosedRange<Int>) -> Int {
    range.lowerBound + Int(nextUInt64() % UInt64(range.count))
  }

  /// Standard normal.
  mutating func normal() -> Float {
    let u1 = max(uniform(), 1e-300)
    let u2 = uniform()
    return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
  }

  /// A tensor of normals · `scale` + `shift`.
  mutating func tensor(_ shape: [Int], scale: Float = 1, shift: Float = 0) -> Tensor {
    var t = Tensor(zeros: shape)
    for i in 0..<t.count { t.data[i] = normal() * scale + shift }
    return t
  }
}

/// Asserts `actual ≈ expected` elementwise: |a − e| ≤ atol + rtol·|e|, reporting the worst element.
func assertClose(
  _ actual: Tensor, _ expected: Tensor, rtol: Float = 1e-5, atol: Float = 1e-6, _ message: String = "",
  file: StaticString = #filePath, line: UInt = #line
) {
  XCTAssertEqual(actual.shape, expected.shape, "shape \(message)", file: file, line: line)
  guard actual.shape == expected.shape else { return }
  var worst = -Float.infinity
  var worstIndex = -1
  for i in 0..<actual.count {
    let a = actual.data[i]
    let e = expected.data[i]
    let excess = abs(a - e) - (atol + rtol * abs(e))
    if excess > worst || a.isNaN != e.isNaN {
      worst = a.isNaN != e.isNaN ? .infinity : excess
      worstIndex = i
    }
  }
  if worst > 0 {
    XCTFail(
      "\(message): element \(worstIndex) of \(actual.shape) is \(actual.data[worstIndex]), expected "
        + "\(expected.data[worstIndex]) (rtol \(rtol), atol \(atol))", file: file, line: line)
  }
}

/// Asserts that `body` throws a `TensorError` whose description names `op`.
func assertTensorError(
  _ op: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void
) {
  do {
    try body()
    XCTFail("expected a TensorError from \(op)", file: file, line: line)
  } catch let error as TensorError {
    XCTAssertTrue(
      error.description.hasPrefix(op), "error '\(error)' does not name \(op)", file: file, line: line)
  } catch {
    XCTFail("expected a TensorError, got \(error)", file: file, line: line)
  }
}
