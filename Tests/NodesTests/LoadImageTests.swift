import Foundation
import ModelIO
import Tensor
import XCTest

@testable import Nodes
@testable import Workflow

final class LoadImageTests: XCTestCase {
  func load(_ png: PNGImage, _ values: [String: Value] = [:]) throws -> Tensor {
    let dir = try Paths.temporaryFolder(self)
    let path = dir.path + "/x.png"
    try png.write(to: path)
    let out = try NodeHarness.run(LoadImageNode(), [:], values, files: ["path": path])
    return try Artifacts.decodeImage(try XCTUnwrap(out["image"]))
  }

  // Gray PNGs are expanded the same way; the PNG writer makes only RGB/RGBA, so they are not tested here.
  func testRGBAndAlpha() throws {
    let rgb = try load(PNGImage(width: 1, height: 1, channels: 3, samples: [255, 0, 51]))
    XCTAssertEqual(rgb.data, [1, 0, 0.2])
    XCTAssertEqual(try load(PNGImage(width: 1, height: 1, channels: 4, samples: [255, 0, 51, 7])).data, [1, 0, 0.2])
  }

  func testRequiredSizeIsChecked() throws {
    let png = try PNGImage(width: 2, height: 1, channels: 3, samples: [1, 2, 3, 4, 5, 6])
    XCTAssertThrowsError(try load(png, ["width": .int(4)])) { error in
      XCTAssertTrue("\(error)".contains("2×1"), "\(error)")
    }
  }
}
