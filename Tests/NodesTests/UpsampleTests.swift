import Foundation
import Tensor
import XCTest

@testable import Nodes
@testable import Workflow

final class UpsampleTests: XCTestCase {
  func testBilinearTwiceAlignCornersFalse() throws {
    // One row 0, 1 → 0, 0.25, 0.75, 1 (torch F.interpolate, scale 2, bilinear, align_corners=False).
    let row = try Tensor(shape: [1, 3, 1, 2], data: [0, 1, 0, 1, 0, 1])
    let out = try NodeHarness.run(UpsampleNode(), ["image": try Artifacts.encodeImage(row)], ["factor": .int(2)])
    let image = try Artifacts.decodeImage(try XCTUnwrap(out["image"]))
    XCTAssertEqual(image.shape, [1, 3, 2, 4])
    XCTAssertEqual(Array(image.data.prefix(4)), [0, 0.25, 0.75, 1])
  }
}
