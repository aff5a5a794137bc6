import Foundation
import Tensor
import XCTest

@testable import Nodes
@testable import Workflow

final class RelaySampleTests: XCTestCase {
  let shape = [1, 4, 8, 8]

  func relay(_ values: [String: Value], low: Artifact? = nil, noise: Artifact? = nil, tiles: Artifact? = nil) throws
    -> Tensor
  {
    var inputs = ["cond": try NodeHarness.cond(), "low": try low ?? NodeHarness.noise(seed: 9, shape: shape)]
    inputs["noise"] = noise
    inputs["tiles"] = tiles
    let out = try NodeHarness.run(
      RelaySampleNode(pool: ModelPool()), inputs,
      ["steps": .int(2), "grid": .int(4)].merging(values) { $1 }, model: "cogview3-relay")
    return try Artifacts.decodeLatent(try XCTUnwrap(out["latent"]))
  }

  func testSeedIsTheSecondDraw() throws {
    let seeded = try relay(["seed": .int(3)])
    XCTAssertEqual(try relay([:], noise: try NodeHarness.noise(seed: 3, shape: shape, draw: 2)), seeded)
    XCTAssertNotEqual(try relay([:], noise: try NodeHarness.noise(seed: 3, shape: shape, draw: 1)), seeded)
  }

  func testTiledRunsOnOverlappingTiles() throws {
    let tiles = Artifacts.encodeTiles(try TilePlan(tile: 64, overlap: 32))
    let tiled = try relay(["seed": .int(1)], tiles: tiles)
    XCTAssertEqual(tiled.shape, shape)
    XCTAssertTrue(tiled.data.allSatisfy(\.isFinite))
  }

  func testThreeChannelLowLatentNamesThePort() throws {
    XCTAssertThrowsError(try relay([:], low: try NodeHarness.noise(seed: 1, shape: [1, 3, 8, 8]))) { error in
      XCTAssertTrue("\(error)".contains("input 'low'"), "\(error)")
      XCTAssertTrue("\(error)".contains("3 channels"), "\(error)")
    }
  }

  func testMoreStepsThanGridPointsIsAValidationError() throws {
    let params = NodeParams(
      ["steps": .int(12), "grid": .int(5)], models: ["model": try NodeHarness.model("cogview3-relay")])
    XCTAssertEqual(RelaySampleNode(pool: ModelPool()).validate(params: params).count, 1)
  }
}
