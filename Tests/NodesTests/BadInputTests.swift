import Foundation
import ModelIO
import Tensor
import XCTest

@testable import Nodes
@testable import Workflow

/// Bad input is reported at validation, naming the node and the field, before anything runs.
final class BadInputTests: XCTestCase {
  /// The diagnostics of loading `yaml` (written to a temporary folder) with the tiny models.
  func diagnostics(_ yaml: String, _ overrides: [String] = [], models: String? = nil) throws -> [String] {
    let dir = try Paths.temporaryFolder(self)
    let file = dir.appendingPathComponent("w.yaml")
    try yaml.write(to: file, atomically: true, encoding: .utf8)
    do {
      _ = try WorkflowRunner(path: file.path, overrides: overrides, modelsDirectory: try models ?? Paths.tinyModels())
      return []
    } catch WorkflowError.invalid(let diagnostics) {
      return diagnostics.map(\.description)
    }
  }

  func testMissingModelFolder() throws {
    let empty = try Paths.temporaryFolder(self)
    let problems = try diagnostics(
      "cogflow: 1\ninclude: \(Paths.workflow("base-512.yaml"))\n", models: empty.path)
    XCTAssertFalse(problems.isEmpty)
    XCTAssertTrue(problems.contains { $0.contains("t5-v1_1-xxl") }, "\(problems)")
  }

  func testWrongKindOfModelNamesExpectedAndFound() throws {
    let vae = try Paths.tinyModels() + "/cogview3-base-3b-vae/sdxl_vae.safetensors"
    let problems = try diagnostics("cogflow: 1\ninclude: \(Paths.workflow("base-512.yaml"))\nmodels:\n  base: \(vae)\n")
    XCTAssertEqual(problems.count, 1, "\(problems)")
    let message = problems.first ?? ""
    XCTAssertTrue(message.contains("node 'base' (base-sample): model"), message)
    XCTAssertTrue(message.contains("expected a CogView3 UNet"), message)
    XCTAssertTrue(message.contains("KL autoencoder") || message.contains("VAE"), message)
  }

  func testWrongSizePNG() throws {
    let dir = try Paths.temporaryFolder(self)
    let png = dir.appendingPathComponent("small.png").path
    try PNGImage(tensor: Tensor(repeating: 0.5, shape: [1, 3, 64, 64])).write(to: png)
    let problems = try diagnostics(
      """
      cogflow: 1
      nodes:
        img: { type: load-image, with: { path: \(png), width: 128, height: 128 } }
      """)
    XCTAssertEqual(problems.count, 1, "\(problems)")
    XCTAssertTrue(problems[0].contains("node 'img' (load-image): path:"), problems[0])
    XCTAssertTrue(problems[0].contains("64×64"), problems[0])
  }

  func testLatentWithThreeChannels() throws {
    let dir = try Paths.temporaryFolder(self)
    let path = dir.appendingPathComponent("z.safetensors").path
    try SafetensorsWriter.write(["latent": StoredTensor(Tensor(zeros: [1, 3, 8, 8]))], to: path)
    let problems = try diagnostics(
      """
      cogflow: 1
      models: { vae: \(try Paths.tinyModels())/cogview3-base-3b-vae/sdxl_vae.safetensors }
      nodes:
        z: { type: load-latent, with: { path: \(path) } }
        img: { type: decode, in: { latent: z.latent }, with: { model: vae } }
      """)
    XCTAssertEqual(problems.count, 1, "\(problems)")
    XCTAssertTrue(problems[0].contains("node 'z' (load-latent): path:"), problems[0])
    XCTAssertTrue(problems[0].contains("[1, 3, 8, 8]"), problems[0])
  }

  func testMissingPromptsFileAndMissingLine() throws {
    let missing = try diagnostics(
      "cogflow: 1\nnodes:\n  p: { type: load-text, with: { path: /nonexistent/prompts.txt } }\n")
    XCTAssertEqual(missing.count, 1, "\(missing)")
    XCTAssertTrue(missing[0].contains("prompts.txt"), missing[0])
    let beyond = try diagnostics(
      "cogflow: 1\nnodes:\n  p: { type: load-text, with: { path: \(Paths.workflow("prompts.txt")), line: 9 } }\n")
    XCTAssertEqual(beyond.count, 1, "\(beyond)")
    XCTAssertTrue(beyond[0].contains("node 'p' (load-text): line:"), beyond[0])
  }

  func testSizeNotAMultipleOf64() throws {
    let problems = try diagnostics("cogflow: 1\ninclude: \(Paths.workflow("base-512.yaml"))\n", ["size=96"])
    XCTAssertEqual(problems.count, 1, "\(problems)")
    XCTAssertTrue(problems[0].contains("node 'base' (base-sample): size:"), problems[0])
  }
}
