import Foundation
import ModelIO
import Models
import XCTest

@testable import Nodes

/// Configurations inferred from shapes must rebuild the exact tensor set of the configuration that made them.
final class ModelConfigTests: XCTestCase {
  func detect(_ shapes: [String: [Int]], prefix: String = "") -> RecognizedPart? {
    ModelRecognizer.recognize(Dictionary(uniqueKeysWithValues: shapes.map { (prefix + $0.key, $0.value) })).first
  }

  func testUNetConfigsFromShapes() throws {
    for official in [UNetConfiguration.cogview3Base, .cogview3BaseDistilled, .cogview3RelayDistilled] {
      let shapes = try UNet.expectedShapes(official)
      guard case .unet(let detected)? = detect(shapes, prefix: "model.diffusion_model.")?.kind else {
        return XCTFail("no UNet recognized")
      }
      let inferred = ModelConfig.unet(detected, settings: CogFlowModelSettings())
      XCTAssertEqual(try UNet.expectedShapes(inferred), shapes)
      XCTAssertEqual(inferred.guidanceEmbedDim, official.guidanceEmbedDim)
      XCTAssertEqual(Set(inferred.attentionResolutions), Set(official.attentionResolutions))
      XCTAssertEqual(inferred.numHeadChannels, 64, "official head width when cogflow.json says nothing")
    }
  }

  func testHeadWidthComesFromSettings() throws {
    let small = UNetConfiguration(
      modelChannels: 32, channelMult: [1, 2], numResBlocks: 1, attentionResolutions: [2], transformerDepth: [0, 1],
      numHeadChannels: 16, contextDim: 64)
    guard case .unet(let detected)? = detect(try UNet.expectedShapes(small))?.kind else { return XCTFail() }
    let inferred = ModelConfig.unet(detected, settings: CogFlowModelSettings(num_head_channels: 16))
    XCTAssertEqual(inferred.numHeadChannels, 16)
    XCTAssertEqual(inferred.contextDim, 64)
    XCTAssertEqual(try UNet.expectedShapes(inferred), try UNet.expectedShapes(small))
  }

  func testVAEConfigFromShapes() throws {
    let shapes = try Autoencoder.expectedShapes(.sdxl)
    guard case .vae(let detected)? = detect(shapes)?.kind else { return XCTFail("no VAE recognized") }
    let inferred = ModelConfig.vae(detected, settings: CogFlowModelSettings())
    XCTAssertEqual(inferred, .sdxl)
  }

  func testSettingsFileIsReadBesideAFile() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cogflow-settings-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    try Data("{\"groups\": 16}".utf8).write(to: dir.appendingPathComponent("cogflow.json"))
    XCTAssertEqual(try CogFlowModelSettings.read(for: dir.appendingPathComponent("vae.safetensors").path).groups, 16)
    XCTAssertEqual(try CogFlowModelSettings.read(for: dir.path).groups, 16)
    try Data("{\"groups\": \"x\"}".utf8).write(to: dir.appendingPathComponent("cogflow.json"))
    XCTAssertThrowsError(try CogFlowModelSettings.read(for: dir.path))
  }
}
