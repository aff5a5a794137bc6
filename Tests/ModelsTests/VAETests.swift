import Foundation
import ModelIO
import Tensor
import XCTest

@testable import Models

// Parity of the KL autoencoder with the official sgm Encoder/Decoder (fixtures made by
// Tests/tools/make_unet_vae_fixtures.py; provenance in Tests/Fixtures/vae/README.json).

final class VAETests: XCTestCase {
  static let small = AutoencoderConfiguration(channels: 32, channelMult: [1, 2], numResBlocks: 1)

  func smallVAE(queryChunk: Int = 1024) throws -> Autoencoder {
    var vae = try Autoencoder(
      configuration: Self.small, weights: try SafetensorsFile(path: unetVAEFixture("vae", "small_weights.safetensors")))
    vae.queryChunk = queryChunk
    return vae
  }

  func io() throws -> SafetensorsFile { try SafetensorsFile(path: unetVAEFixture("vae", "small_io.safetensors")) }

  func testPresetHasTheOfficialKeysAndShapes() throws {
    let official = try officialShapes(section: "VAE for CogView3 base/relay")
    XCTAssertEqual(try Autoencoder.expectedShapes(.sdxl), official)
    XCTAssertEqual(official.values.reduce(0) { $0 + $1.elementCount }, 83_653_863)
  }

  func testSmallEncoderMatchesOfficial() throws {
    let vae = try smallVAE(queryChunk: 5)
    let f = try io()
    let posterior = try vae.encode(try f.tensor("image"))
    XCTAssertLessThanOrEqual(relativeL2(posterior.mean, try f.tensor("mean")), 1e-4)
    XCTAssertLessThanOrEqual(relativeL2(posterior.logVariance, try f.tensor("logvar")), 1e-4)
    // Channels 0 and 1 of the log-variance were pushed past the clamp by the fixture's quant_conv bias.
    let plane = 64
    XCTAssertTrue(posterior.logVariance.data[0..<plane].allSatisfy { $0 == 20 })
    XCTAssertTrue(posterior.logVariance.data[plane..<(2 * plane)].allSatisfy { $0 == -30 })
    let sample = try posterior.sample(noise: try f.tensor("noise"))
    XCTAssertLessThanOrEqual(relativeL2(sample, try f.tensor("sample")), 1e-4)
    let scaled = try vae.encodeScaled(try f.tensor("image"), noise: try f.tensor("noise"))
    XCTAssertLessThanOrEqual(relativeL2(scaled, Ops.affine(try f.tensor("sample"), scale: 0.13025)), 1e-4)
  }

  func testSmallDecoderMatchesOfficial() throws {
    let vae = try smallVAE(queryChunk: 7)
    let f = try io()
    XCTAssertLessThanOrEqual(relativeL2(try vae.decode(try f.tensor("z")), try f.tensor("decoded")), 1e-4)
    let image = try vae.decodeScaled(try f.tensor("z"))
    XCTAssertLessThanOrEqual(relativeL2(image, try f.tensor("decoded_scaled")), 1e-4)
    XCTAssertTrue(image.data.allSatisfy { $0 >= 0 && $0 <= 1 })
  }

  func testFullWidthMiddleMatchesOfficial() throws {
    let probe = WeightBinder(source: nil, residency: .widenPerUse)
    _ = VAEMiddle(WeightScope(probe), channels: 512, groups: 32, attention: true)
    let bound = WeightBinder(source: try formulaSource(probe.expected), residency: .widenPerUse)
    let mid = VAEMiddle(WeightScope(bound), channels: 512, groups: 32, attention: true)
    try bound.finish(model: "VAE middle 512")
    let expected = try SafetensorsFile(path: unetVAEFixture("vae", "mid512_io.safetensors"))
    let x = try Tensor(shape: [1, 512, 16, 16], data: formulaValues(512 * 256, seed: 90003))
    let norm = Ops.standardGroupNorm
    let h1 = try mid.block1(x, norm: norm)
    let h2 = try mid.attention!(h1, norm: norm, queryChunk: 100)
    let h3 = try mid.block2(h2, norm: norm)
    for (name, got) in [("block_1", h1), ("attn_1", h2), ("block_2", h3)] {
      let err = relativeL2(got, try expected.tensor(name))
      XCTAssertLessThanOrEqual(err, 1e-5, name)
      print("VAE middle 512 \(name) relative L2: \(err)")
    }
    // A faint input (×2⁻¹⁰) makes the GroupNorm epsilon visible in the output.
    var faint = Ops.affine(x, scale: 0x1p-10)
    faint = try mid(faint, norm: norm, queryChunk: 1024)
    let errFaint = relativeL2(faint, try expected.tensor("faint"))
    XCTAssertLessThanOrEqual(errFaint, 1e-5)
    print("VAE middle 512 faint input relative L2: \(errFaint)")
  }

  func testGroupNormGoesThroughTheHook() throws {
    let vae = try smallVAE()
    let f = try io()
    final class Calls: @unchecked Sendable { var channels: [Int] = [] }
    let calls = Calls()
    let recording: GroupNormFunction = { x, groups, weight, bias, eps in
      calls.channels.append(x.shape[1])
      XCTAssertEqual(eps, 1e-6)
      XCTAssertEqual(groups, 32)
      return try Ops.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps)
    }
    let z = try f.tensor("z")
    XCTAssertEqual(try vae.decode(z, groupNorm: recording), try vae.decode(z))
    // Decoder: mid 2 blocks × 2 + mid attention, 2 levels × 2 blocks × 2, norm_out.
    XCTAssertEqual(calls.channels, [64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 32, 32, 32, 32])
    // A different norm changes the result, so the hook is really what runs.
    let shifted: GroupNormFunction = { x, groups, weight, bias, eps in
      Ops.affine(try Ops.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps), scale: 1, shift: 0.1)
    }
    XCTAssertGreaterThan(relativeL2(try vae.decode(z, groupNorm: shifted), try vae.decode(z)), 1e-3)
    calls.channels = []
    _ = try vae.encode(try f.tensor("image"), groupNorm: recording)
    // Encoder: level 0 block (32), level 1 block 32→64, mid 2 × 2 + attention, norm_out.
    XCTAssertEqual(calls.channels, [32, 32, 32, 64, 64, 64, 64, 64, 64, 64])
  }

  func testStagesComposeToEncodeAndDecode() throws {
    let vae = try smallVAE()
    let f = try io()
    var h = try f.tensor("z")
    let decoderStages = vae.decoderStages()
    XCTAssertEqual(decoderStages.count, 1 + 3 + 2 + 1 + 2 + 1)
    XCTAssertEqual(vae.decoderMiddleEnd, 4)
    XCTAssertEqual(vae.encoderMiddleStage, 1 + 1 + 1 + 1)
    for stage in decoderStages { h = try stage(h, Ops.standardGroupNorm) }
    XCTAssertEqual(h, try vae.decode(try f.tensor("z")))
    var m = try f.tensor("image")
    for stage in vae.encoderStages() { m = try stage(m, Ops.standardGroupNorm) }
    let posterior = try vae.posterior(moments: m)
    XCTAssertEqual(posterior.mean, try vae.encode(try f.tensor("image")).mean)
    XCTAssertLessThanOrEqual(relativeL2(posterior.mean, try f.tensor("mean")), 1e-4)
  }

  func testBadInputsAndCheckpointsAreTypedErrors() throws {
    let vae = try smallVAE()
    XCTAssertThrowsError(try vae.encode(Tensor(zeros: [1, 3, 15, 16])))
    XCTAssertThrowsError(try vae.encode(Tensor(zeros: [1, 4, 16, 16])))
    XCTAssertThrowsError(try vae.decode(Tensor(zeros: [1, 3, 8, 8])))
    XCTAssertThrowsError(
      try LatentDistribution(mean: Tensor(zeros: [1, 4, 2, 2]), logVariance: Tensor(zeros: [1, 4, 2, 2]))
        .sample(noise: Tensor(zeros: [1, 4, 2, 3])))
    let file = try SafetensorsFile(path: unetVAEFixture("vae", "small_weights.safetensors"))
    XCTAssertThrowsError(try Autoencoder(configuration: .sdxl, weights: file)) { error in
      guard let e = error as? WeightMismatchError else { return XCTFail("\(error)") }
      XCTAssertFalse(e.missing.isEmpty)
      XCTAssertFalse(e.misShaped.isEmpty)
      XCTAssertTrue(e.description.contains("small_weights.safetensors"))
      XCTAssertTrue(e.description.contains("\(e.missing.count) missing"))
    }
  }

  func testConfigurationDecodesWithDefaults() throws {
    let decoded = try JSONDecoder().decode(AutoencoderConfiguration.self, from: Data("{}".utf8))
    XCTAssertEqual(decoded, .sdxl)
    let round = try JSONDecoder().decode(AutoencoderConfiguration.self, from: JSONEncoder().encode(Self.small))
    XCTAssertEqual(round, Self.small)
  }
}
