import Foundation
import Tensor
import XCTest

@testable import Nodes
@testable import Workflow

final class BaseSampleTests: XCTestCase {
  func sample(_ values: [String: Value], noise: Artifact? = nil, model: String = "cogview3-base") throws -> Tensor {
    var inputs = ["cond": try NodeHarness.cond()]
    inputs["noise"] = noise
    let out = try NodeHarness.run(
      BaseSampleNode(pool: ModelPool()), inputs, ["size": .int(64), "steps": .int(2)].merging(values) { $1 },
      model: model)
    return try Artifacts.decodeLatent(try XCTUnwrap(out["latent"]))
  }

  func testSeedIsTheFirstDrawAndANoiseInputReplacesIt() throws {
    let seeded = try sample(["seed": .int(5)])
    XCTAssertEqual(seeded.shape, [1, 4, 8, 8])
    let given = try sample(["seed": .int(0)], noise: try NodeHarness.noise(seed: 5, shape: [1, 4, 8, 8]))
    XCTAssertEqual(given, seeded, "ε = the first randn of torch.manual_seed(5)")
    XCTAssertNotEqual(try sample(["seed": .int(6)]), seeded)
  }

  func testNonSquareSize() throws {
    XCTAssertEqual(try sample(["width": .int(128), "height": .int(64)]).shape, [1, 4, 8, 16])
    let problems = BaseSampleNode(pool: ModelPool()).validate(
      params: NodeParams(
        ["size": .int(512), "width": .int(100), "height": .int(0)],
        models: ["model": try NodeHarness.model("cogview3-base")]))
    XCTAssertEqual(problems.count, 1, "\(problems)")
  }

  func testDistilledModelTakesTheGuidanceScaleThroughWProj() throws {
    let a = try sample(["cfg": .float(7.5)], model: "cogview3-base-distill-4step")
    let b = try sample(["cfg": .float(3)], model: "cogview3-base-distill-4step")
    XCTAssertTrue(a.data.allSatisfy(\.isFinite))
    XCTAssertNotEqual(a, b, "w enters the UNet through w_proj")
  }

  func testNoiseOfTheWrongShapeNamesThePort() throws {
    XCTAssertThrowsError(try sample([:], noise: try NodeHarness.noise(seed: 1, shape: [1, 4, 4, 4]))) { error in
      XCTAssertTrue("\(error)".contains("input 'noise'"), "\(error)")
    }
  }
}
