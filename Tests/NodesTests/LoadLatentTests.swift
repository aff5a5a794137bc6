import Foundation
import ModelIO
import Tensor
import XCTest

@testable import Nodes
@testable import Workflow

/// load-latent and save-latent: a latent written by one is read back by the other.
final class LoadLatentTests: XCTestCase {
  func testSaveThenLoadRoundTrip() throws {
    let dir = try Paths.temporaryFolder(self)
    var g = TorchGenerator(seed: 1)
    let z = g.randn([1, 4, 3, 5])
    _ = try NodeHarness.run(
      SaveLatentNode(), ["latent": try Artifacts.encodeLatent(z)], ["path": .string(dir.path + "/z.safetensors")])
    let out = try NodeHarness.run(LoadLatentNode(), [:], [:], files: ["path": dir.path + "/z.safetensors"])
    XCTAssertEqual(try Artifacts.decodeLatent(try XCTUnwrap(out["latent"])), z)
  }

  func testChannelsAndTensorNameAreChecked() throws {
    let dir = try Paths.temporaryFolder(self)
    let path = dir.path + "/two.safetensors"
    try SafetensorsWriter.write(
      ["a": StoredTensor(Tensor(zeros: [1, 4, 2, 2])), "b": StoredTensor(Tensor(zeros: [1, 4, 2, 2]))], to: path)
    let problems = LoadLatentNode().validate(params: NodeParams(["channels": .int(4)], files: ["path": path]))
    XCTAssertEqual(problems.count, 1)
    XCTAssertTrue(problems.first?.contains("none named 'latent'") ?? false, "\(problems)")
  }
}
