import Foundation
import Tensor
import XCTest

@testable import Nodes
@testable import Workflow

final class EncodeLatentTests: XCTestCase {
  func image(_ side: Int = 64) throws -> Artifact {
    var g = TorchGenerator(seed: 2)
    return try Artifacts.encodeImage(g.rand([1, 3, side, side]))
  }

  func encode(_ values: [String: Value], image: Artifact? = nil, noise: Artifact? = nil) throws -> Tensor {
    var inputs = ["image": try image ?? self.image()]
    inputs["noise"] = noise
    let out = try NodeHarness.run(EncodeLatentNode(pool: ModelPool()), inputs, values, model: NodeHarness.vae)
    return try Artifacts.decodeLatent(try XCTUnwrap(out["latent"]))
  }

  func testSampleUsesTheFirstDrawAndMeanIgnoresTheSeed() throws {
    let sampled = try encode(["seed": .int(4)])
    XCTAssertEqual(sampled.shape, [1, 4, 8, 8])
    XCTAssertEqual(try encode([:], noise: try NodeHarness.noise(seed: 4, shape: [1, 4, 8, 8])), sampled)
    let mean = try encode(["mode": .string("mean"), "seed": .int(1)])
    XCTAssertEqual(try encode(["mode": .string("mean"), "seed": .int(2)]), mean)
    XCTAssertNotEqual(mean, sampled)
  }

  func testImageNotAMultipleOf8NamesThePort() throws {
    var g = TorchGenerator(seed: 1)
    let odd = try Artifacts.encodeImage(g.rand([1, 3, 60, 64]))
    XCTAssertThrowsError(try encode([:], image: odd)) { error in
      XCTAssertTrue("\(error)".contains("input 'image'"), "\(error)")
    }
  }
}
