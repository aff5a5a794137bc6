import Foundation
import XCTest

@testable import Tensor

/// Accuracy of the vectorized exp / erfc / activations against Double-precision references.
final class FastMathTests: XCTestCase {
  /// Runs `f` over `xs` eight lanes at a time.
  func apply(_ xs: [Float], _ f: (FastMath.V) -> FastMath.V) -> [Float] {
    var out = [Float](repeating: 0, count: xs.count)
    xs.withUnsafeBufferPointer { s in
      out.withUnsafeMutableBufferPointer { d in FastMath.map(s.baseAddress!, d.baseAddress!, xs.count, f) }
    }
    return out
  }

  func grid(_ lo: Float, _ hi: Float, _ n: Int) -> [Float] {
    (0..<n).map { lo + (hi - lo) * Float($0) / Float(n - 1) }
  }

  func maxRelativeError(_ xs: [Float], _ got: [Float], _ ref: (Double) -> Double) -> (Double, Float) {
    var worst = 0.0
    var at: Float = 0
    for (x, y) in zip(xs, got) {
      let r = ref(Double(x))
      let e = r == 0 ? abs(Double(y)) : abs(Double(y) - r) / abs(r)
      if e > worst {
        worst = e
        at = x
      }
    }
    return (worst, at)
  }

  func testExpIsWithinTwoUlp() {
    let xs = grid(-87.3, 88.3, 200_001)
    let (err, at) = maxRelativeError(xs, apply(xs) { FastMath.exp($0) }, Foundation.exp)
    XCTAssertLessThan(err, 2.5e-7, "worst at \(at)")
    let special = apply([-.infinity, -200, -88, 89, 200, .infinity, 0, -0.0]) { FastMath.exp($0) }
    XCTAssertEqual(special, [0, 0, 0, .infinity, .infinity, .infinity, 1, 1])
  }

  func testGeluErfRelativeAccuracy() {
    let gelu: (Double) -> Double = { 0.5 * $0 * erfc(-$0 / 2.0.squareRoot()) }
    let xs = grid(-12.5, 12, 100_001)
    let (err, at) = maxRelativeError(xs, apply(xs) { FastMath.gelu($0) }, gelu)
    XCTAssertLessThan(err, 1e-6, "worst at \(at)")
    // The central range where activations live: ~float32 precision.
    let core = grid(-3, 3, 60_001)
    let (errCore, atCore) = maxRelativeError(core, apply(core) { FastMath.gelu($0) }, gelu)
    XCTAssertLessThan(errCore, 1e-6, "worst at \(atCore)")
    // Far tail: tiny, finite, correctly signed.
    let tail = apply([-13, -20, -1e6, 1e6]) { FastMath.gelu($0) }
    XCTAssertTrue(tail[0...2].allSatisfy { $0 <= 0 && $0 > -1e-30 })
    XCTAssertEqual(tail[3], 1e6)
  }

  func testGeluTanhAndSiluRelativeAccuracy() {
    // ½x(1 + tanh u) = x/(1 + e^(−2u)); the second form keeps the negative tail in double.
    let geluTanh: (Double) -> Double = {
      $0 / (1 + Foundation.exp(-2 * (2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0)))
    }
    let xs = grid(-3, 12, 100_001)
    let (e1, a1) = maxRelativeError(xs, apply(xs) { FastMath.geluTanh($0) }, geluTanh)
    XCTAssertLessThan(e1, 1e-6, "geluTanh worst at \(a1)")
    // Further out, float32 rounding of u = √(2/π)(x + 0.044715x³) itself (|u| up to 33 at x = −9)
    // bounds the accuracy; PyTorch's float32 formula returns 0 there.
    let tail = grid(-9, -3, 10_001)
    let (e2, a2) = maxRelativeError(tail, apply(tail) { FastMath.geluTanh($0) }, geluTanh)
    XCTAssertLessThan(e2, 2e-5, "geluTanh tail worst at \(a2)")
    let xs2 = grid(-80, 80, 100_001)
    let (e3, a3) = maxRelativeError(xs2, apply(xs2) { FastMath.silu($0) }, { $0 / (1 + Foundation.exp(-$0)) })
    XCTAssertLessThan(e3, 1e-6, "silu worst at \(a3)")
  }

  func testErfcTail() {
    let xs = grid(0, 12.7, 40_001)
    let (err, at) = maxRelativeError(xs, apply(xs) { FastMath.erfcOverSqrt2($0) }, { erfc($0 / 2.0.squareRoot()) })
    XCTAssertLessThan(err, 1e-6, "worst at \(at)")
  }
}
