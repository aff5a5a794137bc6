import Foundation
import ModelIO
import Tensor
import XCTest

@testable import Nodes
@testable import Workflow

final class ArtifactsTests: XCTestCase {
  func random(_ shape: [Int], seed: UInt64) -> Tensor {
    var g = TorchGenerator(seed: seed)
    return g.randn(shape)
  }

  func testLatentRoundTripAndCanonicalBytes() throws {
    let z = random([1, 4, 6, 10], seed: 1)
    let a = try Artifacts.encodeLatent(z)
    XCTAssertEqual(a.type, "latent")
    XCTAssertEqual(try Artifacts.decodeLatent(a), z)
    XCTAssertEqual(try Artifacts.encodeLatent(z).bytes, a.bytes, "equal tensors must give equal bytes")
    XCTAssertNotEqual(try Artifacts.encodeLatent(random([1, 4, 6, 10], seed: 2)).bytes, a.bytes)
  }

  func testTensorArtifactsAreSafetensorsFiles() throws {
    let z = random([1, 4, 3, 2], seed: 6)
    let a = try Artifacts.encodeLatent(z)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("cogflow-\(UUID().uuidString).safetensors")
    defer { try? FileManager.default.removeItem(at: path) }
    try SafetensorsWriter.write(["latent": StoredTensor(z)], metadata: ["cogflow": "latent"], to: path.path)
    XCTAssertEqual(try Data(contentsOf: path), a.bytes, "the same bytes as a safetensors file (inspectable)")
  }

  func testCondRoundTrip() throws {
    let c = random([1, 225, 8], seed: 3)
    let a = try Artifacts.encodeCond(c)
    XCTAssertEqual(a.type, "cond")
    XCTAssertEqual(try Artifacts.decodeCond(a), c)
    XCTAssertThrowsError(try Artifacts.decodeLatent(a), "a cond artifact is not a latent")
  }

  func testImageRoundTripAndShapeCheck() throws {
    let x = Ops.clamp(random([1, 3, 5, 7], seed: 4), 0, 1)
    XCTAssertEqual(try Artifacts.decodeImage(try Artifacts.encodeImage(x)), x)
    XCTAssertThrowsError(try Artifacts.encodeImage(random([1, 4, 5, 7], seed: 5)))
  }

  func testTilesRoundTripAndLimits() throws {
    let plan = try TilePlan(tile: 1024, overlap: 256)
    let a = Artifacts.encodeTiles(plan)
    XCTAssertEqual(a.text, "{\"overlap\":256,\"tile\":1024}")
    XCTAssertEqual(try Artifacts.decodeTiles(a), plan)
    XCTAssertEqual(plan.latentTile, 128)
    XCTAssertEqual(plan.latentOverlap, 32)
    XCTAssertThrowsError(try TilePlan(tile: 100, overlap: 8), "not a multiple of 8")
    XCTAssertThrowsError(try TilePlan(tile: 128, overlap: 128), "overlap must be below the tile")
    XCTAssertThrowsError(try Artifacts.decodeTiles(Artifact(text: "{}", type: "tiles")))
  }

  func testTextRoundTrip() {
    XCTAssertEqual(Artifact(text: "a fox ü").text, "a fox ü")
  }

  func testGarbageIsAClearError() {
    XCTAssertThrowsError(try Artifacts.decodeLatent(Artifact(type: "latent", bytes: Data([1, 2, 3])))) { error in
      XCTAssertFalse("\(error)".isEmpty)
    }
  }
}
