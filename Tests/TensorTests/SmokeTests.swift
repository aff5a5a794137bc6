import XCTest

@testable import Tensor

final class SmokeTests: XCTestCase {
  func testLinearMatchesNaive() throws {
    let x = try Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6])
    let w = try Tensor(shape: [2, 3], data: [1, 0, -1, 0.5, 0.25, 2])
    let b = try Tensor(shape: [2], data: [0.5, -1])
    let fast = try Ops.linear(x, weight: w, bias: b)
    let slow = try Naive.linear(x, weight: w, bias: b)
    XCTAssertEqual(fast.shape, [2, 2])
    XCTAssertEqual(fast.data, slow.data)
    XCTAssertEqual(fast.data, [-1.5, 6.0, -1.5, 14.25])
  }
}
