import Foundation
import Tensor
import XCTest

@testable import Nodes
@testable import Workflow

final class DecodeTests: XCTestCase {
  func decode(_ quantize: String, latent: Artifact? = nil) throws -> Tensor {
    let out = try NodeHarness.run(
      DecodeNode(pool: ModelPool()), ["latent": try latent ?? NodeHarness.noise(seed: 7, shape: [1, 4, 8, 8])],
      ["quantize": .string(quantize)], model: NodeHarness.vae)
    return try Artifacts.decodeImage(try XCTUnwrap(out["image"]))
  }

  func testQuantizeModes() throws {
    let float = try decode("none")
    let truncated = try decode("truncate")
    let rounded = try decode("round")
    XCTAssertEqual(float.shape, [1, 3, 64, 64])
    XCTAssertTrue(float.data.allSatisfy { $0 >= 0 && $0 <= 1 })
    func isLevel(_ v: Float) -> Bool { (v * 255).rounded() == v * 255 }
    XCTAssertFalse(float.data.allSatisfy(isLevel), "the float image keeps its fractions")
    XCTAssertTrue(truncated.data.allSatisfy(isLevel))
    XCTAssertTrue(rounded.data.allSatisfy(isLevel))
    for (f, t) in zip(float.data, truncated.data) {
      XCTAssertEqual(t, (f * 255).rounded(.down) / 255, accuracy: 1e-7, "truncation = ⌊255·x⌋/255")
    }
    XCTAssertNotEqual(truncated, rounded)
  }

  func testThreeChannelLatentNamesThePort() throws {
    XCTAssertThrowsError(try decode("none", latent: try NodeHarness.noise(seed: 1, shape: [1, 3, 8, 8]))) { error in
      XCTAssertTrue("\(error)".contains("input 'latent'"), "\(error)")
    }
  }
}
