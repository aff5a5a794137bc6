import Foundation
import ModelIO
import Tensor
import XCTest

@testable import Models

// Parity of the UNet with the official sgm classes (fixtures made by Tests/tools/make_unet_vae_fixtures.py;
// provenance in Tests/Fixtures/unet/README.json).

/// `Tests/Fixtures/<area>/<name>`.
func unetVAEFixture(_ area: String, _ name: String) -> String {
  URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures").appendingPathComponent(area).appendingPathComponent(name).path
}

/// ‖a − b‖ / ‖b‖ over all elements (shapes must agree).
func relativeL2(_ a: Tensor, _ b: Tensor, file: StaticString = #filePath, line: UInt = #line) -> Double {
  XCTAssertEqual(a.shape, b.shape, "shapes differ", file: file, line: line)
  guard a.shape == b.shape else { return .infinity }
  var num = 0.0
  var den = 0.0
  for i in 0..<a.count {
    let d = Double(a.data[i]) - Double(b.data[i])
    num += d * d
    den += Double(b.data[i]) * Double(b.data[i])
  }
  return (num / max(den, 1e-300)).squareRoot()
}

/// The fixture script's `formula(n, seed)`: murmur3 fmix32 of (i·0x9E3779B9 + seed·0x85EBCA6B), top 24 bits
/// mapped to [−1, 1). Exact in float32, so Python and Swift produce the same bits.
func formulaValues(_ n: Int, seed: UInt64) -> [Float] {
  [Float](unsafeUninitializedCapacity: n) { buffer, count in
    for i in 0..<n {
      var x = UInt32(truncatingIfNeeded: UInt64(i) &* 0x9E37_79B9 &+ seed &* 0x85EB_CA6B)
      x ^= x >> 16
      x = x &* 0x85EB_CA6B
      x ^= x >> 13
      x = x &* 0xC2B2_AE35
      x ^= x >> 16
      buffer[i] = Float(x >> 8) * 0x1p-23 - 1
    }
    count = n
  }
}

/// The script's `formula_tensor`: matrices and kernels r/√fan_in, 1-D weights 1 + r/4, biases r/4.
func formulaTensor(_ key: String, _ shape: [Int], seed: UInt64) throws -> Tensor {
  var r = formulaValues(shape.elementCount, seed: seed)
  if shape.count >= 2 {
    let scale = Float(1.0 / Double(shape.dropFirst().reduce(1, *)).squareRoot())
    for i in r.indices { r[i] *= scale }
  } else if key.hasSuffix("weight") {
    for i in r.indices { r[i] = r[i] * 0.25 + 1 }
  } else {
    for i in r.indices { r[i] *= 0.25 }
  }
  return try Tensor(shape: shape, data: r)
}

/// A memory source holding formula weights for `expected` (seed = 1 + index of the key in sorted order).
func formulaSource(_ expected: [String: [Int]]) throws -> MemoryTensorSource {
  var tensors: [String: StoredTensor] = [:]
  for (i, key) in expected.keys.sorted().enumerated() {
    tensors[key] = try StoredTensor(try formulaTensor(key, expected[key]!, seed: UInt64(i + 1)))
  }
  return MemoryTensorSource(tensors, location: "<formula weights>")
}

/// The key → shape lists of `Tests/Fixtures/unet/cogview3-state-dict-shapes.txt` (a copy of the shared
/// reference, generated from the official classes on the meta device), by `## ` section title prefix.
func officialShapes(section: String) throws -> [String: [Int]] {
  let text = try String(contentsOfFile: unetVAEFixture("unet", "cogview3-state-dict-shapes.txt"), encoding: .utf8)
  var out: [String: [Int]] = [:]
  var inside = false
  for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
    if line.hasPrefix("## ") {
      inside = line.dropFirst(3).hasPrefix(section)
      continue
    }
    guard inside, !line.hasPrefix("#"), let open = line.firstIndex(of: " ") else { continue }
    let key = String(line[..<open])
    let dims = line[open...].filter { "0123456789,".contains($0) }.split(separator: ",").compactMap { Int($0) }
    out[key] = dims
  }
  return out
}

final class UNetTests: XCTestCase {
  static let small = UNetConfiguration(
    inChannels: 4, outChannels: 4, modelChannels: 32, channelMult: [1, 2], numResBlocks: 1,
    attentionResolutions: [1, 2], transformerDepth: [1, 2], transformerDepthMiddle: 1, numHeadChannels: 16,
    contextDim: 64, admInChannels: 48, guidanceEmbedDim: 16)

  func smallWeights() throws -> any TensorSource {
    PrefixedTensorSource(
      try SafetensorsFile(path: unetVAEFixture("unet", "small_weights.safetensors")), stripping: UNet.satPrefix)
  }

  func smallIO() throws -> SafetensorsFile { try SafetensorsFile(path: unetVAEFixture("unet", "small_io.safetensors")) }

  func testPresetsHaveTheOfficialKeysAndShapes() throws {
    let official = try officialShapes(section: "UNet (cogview3_base.yaml")
    XCTAssertEqual(official.count, 1680)
    let base = try UNet.expectedShapes(.cogview3Base)
    XCTAssertEqual(base, official)
    XCTAssertEqual(try UNet.expectedShapes(.cogview3Relay), official)
    XCTAssertEqual(base.values.reduce(0) { $0 + $1.elementCount }, 2_906_612_484)

    var distilledBase = official
    distilledBase.merge(try officialShapes(section: "Extra in cogview3_base_distill")) { a, _ in a }
    XCTAssertEqual(try UNet.expectedShapes(.cogview3BaseDistilled), distilledBase)
    XCTAssertEqual(distilledBase.values.reduce(0) { $0 + $1.elementCount }, 2_906_776_324)
    var distilledRelay = official
    distilledRelay.merge(try officialShapes(section: "Extra in cogview3_relay_distill")) { a, _ in a }
    XCTAssertEqual(try UNet.expectedShapes(.cogview3RelayDistilled), distilledRelay)
    XCTAssertEqual(distilledRelay.values.reduce(0) { $0 + $1.elementCount }, 2_906_694_404)
  }

  func testSmallUNetMatchesOfficial() throws {
    let unet = try UNet(configuration: Self.small, weights: try smallWeights())
    let io = try smallIO()
    let x = try io.tensor("x")
    let t = try io.tensor("t").data
    let context = try io.tensor("context")
    let y = try io.tensor("y")
    let eps = try unet.forward(
      x, timesteps: t, context: context, y: y, guidanceEmbedding: try io.tensor("scale_emb"))
    let errGuided = relativeL2(eps, try io.tensor("eps"))
    XCTAssertLessThanOrEqual(errGuided, 1e-4)
    let plain = try unet.forward(x, timesteps: t, context: context, y: y, guidanceEmbedding: nil)
    let errPlain = relativeL2(plain, try io.tensor("eps_no_guidance"))
    XCTAssertLessThanOrEqual(errPlain, 1e-4)
    // The two official outputs differ, so the guidance path is really exercised.
    XCTAssertGreaterThan(relativeL2(try io.tensor("eps"), try io.tensor("eps_no_guidance")), 1e-3)
    print("small UNet relative L2: guided \(errGuided), plain \(errPlain)")
  }

  func testSinusoidsMatchOfficial() throws {
    let io = try smallIO()
    let tEmb = Embeddings.timestep(try io.tensor("t").data, dim: 32)
    XCTAssertLessThanOrEqual(relativeL2(tEmb, try io.tensor("t_emb")), 1e-6)
    // Arguments reach 7500 rad, where float32 sin/cos implementations differ by ~1e-4 (official §2.2).
    let gEmb = Embeddings.guidance([7.5, 7.5], dim: 16)
    XCTAssertLessThanOrEqual(relativeL2(gEmb, try io.tensor("scale_emb")), 1e-3)
  }

  func testGuidanceScaleEntersThroughWProj() throws {
    let unet = try UNet(configuration: Self.small, weights: try smallWeights())
    let io = try smallIO()
    let eps = try unet(
      try io.tensor("x"), timesteps: try io.tensor("t").data, context: try io.tensor("context"),
      y: try io.tensor("y"), guidance: 7.5)
    XCTAssertLessThanOrEqual(relativeL2(eps, try io.tensor("eps")), 1e-3)
  }

  func testFullWidthSpatialTransformerMatchesOfficial() throws {
    let binder = WeightBinder(source: nil, residency: .widenPerUse)
    _ = SpatialTransformer(WeightScope(binder), channels: 1280, contextChannels: 4096, heads: 20, depth: 1, groups: 32)
    let source = try formulaSource(binder.expected)
    let bound = WeightBinder(source: source, residency: .widenPerUse)
    let st = SpatialTransformer(
      WeightScope(bound), channels: 1280, contextChannels: 4096, heads: 20, depth: 1, groups: 32)
    try bound.finish(model: "SpatialTransformer 1280")
    let x = try Tensor(shape: [1, 1280, 8, 8], data: formulaValues(1280 * 64, seed: 90001))
    let context = try Tensor(shape: [1, 225, 4096], data: formulaValues(225 * 4096, seed: 90002))
    let out = try st(x, context: context, queryChunk: 24)
    let file = try SafetensorsFile(path: unetVAEFixture("unet", "st1280_io.safetensors"))
    let err = relativeL2(out, try file.tensor("out"))
    XCTAssertLessThanOrEqual(err, 1e-5)
    // A faint input (×2⁻¹⁰) makes the GroupNorm/LayerNorm epsilons visible in the output.
    let faint = try st(Ops.affine(x, scale: 0x1p-10), context: context, queryChunk: 1024)
    let errFaint = relativeL2(faint, try file.tensor("out_faint"))
    XCTAssertLessThanOrEqual(errFaint, 1e-5)
    print("SpatialTransformer 1280 relative L2: \(err), faint input \(errFaint)")
  }

  func testCheckpointMismatchListsMissingUnexpectedAndMisShapedKeys() throws {
    let file = try SafetensorsFile(path: unetVAEFixture("unet", "small_weights.safetensors"))
    // The undistilled configuration does not use w_proj: one unexpected key, named with the file.
    var plain = Self.small
    plain.guidanceEmbedDim = nil
    XCTAssertThrowsError(try UNet(configuration: plain, weights: try smallWeights())) { error in
      guard let e = error as? WeightMismatchError else { return XCTFail("\(error)") }
      XCTAssertEqual(e.unexpected, ["w_proj.weight"])
      XCTAssertEqual(e.missing, [])
      XCTAssertTrue(e.description.contains("small_weights.safetensors"), e.description)
    }
    // A wider context: every attn2.to_k/to_v is mis-shaped.
    var wide = Self.small
    wide.contextDim = 96
    XCTAssertThrowsError(try UNet(configuration: wide, weights: try smallWeights())) { error in
      guard let e = error as? WeightMismatchError else { return XCTFail("\(error)") }
      let attn2 = file.keys.filter { $0.contains("attn2.to_k") || $0.contains("attn2.to_v") }
      XCTAssertEqual(e.misShaped.count, attn2.count)
      XCTAssertEqual(e.misShaped.first?.found.last, 64)
      XCTAssertEqual(e.misShaped.first?.expected.last, 96)
      XCTAssertTrue(e.description.contains("\(attn2.count) mis-shaped"), e.description)
    }
    // A deeper middle transformer: its second block's keys are missing.
    var deep = Self.small
    deep.transformerDepthMiddle = 2
    XCTAssertThrowsError(try UNet(configuration: deep, weights: try smallWeights())) { error in
      guard let e = error as? WeightMismatchError else { return XCTFail("\(error)") }
      XCTAssertEqual(e.missing.count, 20)
      XCTAssertTrue(e.missing.allSatisfy { $0.hasPrefix("middle_block.1.transformer_blocks.1.") })
      XCTAssertTrue(e.description.contains("20 missing"), e.description)
    }
    // Without the SAT prefix stripped nothing matches.
    let expectedCount = try UNet.expectedShapes(Self.small).count
    XCTAssertThrowsError(try UNet(configuration: Self.small, weights: file)) { error in
      guard let e = error as? WeightMismatchError else { return XCTFail("\(error)") }
      XCTAssertEqual(e.missing.count, expectedCount)
      XCTAssertEqual(e.unexpected.count, file.keys.count)
    }
  }

  func testCheckpointViewsAndPresetDetection() throws {
    let file = try SafetensorsFile(path: unetVAEFixture("unet", "small_weights.safetensors"))
    let view = UNet.weights(in: file)
    XCTAssertEqual(Set(view.keys), Set(try UNet.expectedShapes(Self.small).keys))
    XCTAssertEqual(UNet.weights(in: view).keys, view.keys)
    // The small file's w_proj is [32, 16]: detection reads w_dim from it.
    XCTAssertEqual(UNetConfiguration.cogview3(matching: view).guidanceEmbedDim, 16)
    XCTAssertEqual(UNetConfiguration.cogview3(matching: MemoryTensorSource([:])), .cogview3Base)
    let vaeFile = try SafetensorsFile(path: unetVAEFixture("vae", "small_weights.safetensors"))
    XCTAssertEqual(Autoencoder.weights(in: vaeFile).keys, vaeFile.keys)
    let engine = MemoryTensorSource(
      Dictionary(
        uniqueKeysWithValues: try vaeFile.keys.map { ("first_stage_model." + $0, try vaeFile.stored($0)) }
          + [("model.diffusion_model.x", try StoredTensor(Tensor(zeros: [1])))]))
    XCTAssertEqual(Autoencoder.weights(in: engine).keys, vaeFile.keys)
  }

  /// The full CogView3 base/distilled architecture (2.9B parameters, depth 10 at 1280 channels) runs end to
  /// end at a tiny latent. All tensors borrow one shared 26 MB bf16 buffer of formula values, so the test
  /// needs ~100 MB instead of 5.8 GB; the point is the real wiring (skip channel counts, heads, w_proj).
  func testFullPresetRunsOnSharedWeights() throws {
    let config = UNetConfiguration.cogview3BaseDistilled
    let expected = try UNet.expectedShapes(config)
    let largest = expected.values.map(\.elementCount).max() ?? 0
    let values = formulaValues(largest, seed: 7).map { $0 / 64 }
    let shared = try StoredTensor(try Tensor(shape: [largest], data: values), as: .bf16)
    var tensors: [String: StoredTensor] = [:]
    for (key, shape) in expected {
      tensors[key] = try StoredTensor(dtype: .bf16, shape: shape, storage: shared.storage, offset: shared.offset)
    }
    let unet = try UNet(configuration: config, weights: MemoryTensorSource(tensors))
    let x = try Tensor(shape: [1, 4, 8, 8], data: formulaValues(256, seed: 8))
    let context = try Tensor(shape: [1, 2, 4096], data: formulaValues(2 * 4096, seed: 9))
    let y = try Tensor(shape: [1, 1536], data: formulaValues(1536, seed: 10))
    let eps = try unet(x, timesteps: [999], context: context, y: y, guidance: 7.5)
    XCTAssertEqual(eps.shape, [1, 4, 8, 8])
    XCTAssertTrue(eps.data.allSatisfy(\.isFinite))
    XCTAssertGreaterThan(eps.data.map { abs($0) }.max() ?? 0, 0)
    print("full UNet at 8×8, 2 context tokens: \(unet.flopCounter.flops / 1e9) GFLOP")
  }

  func testKeepWidenedGivesTheSameResult() throws {
    let io = try smallIO()
    let args = (try io.tensor("x"), try io.tensor("t").data, try io.tensor("context"), try io.tensor("y"))
    let lazy = try UNet(configuration: Self.small, weights: try smallWeights())
    let kept = try UNet(configuration: Self.small, weights: try smallWeights(), residency: .keepWidened)
    let a = try lazy.forward(args.0, timesteps: args.1, context: args.2, y: args.3, guidanceEmbedding: nil)
    _ = try kept.forward(args.0, timesteps: args.1, context: args.2, y: args.3, guidanceEmbedding: nil)
    let b = try kept.forward(args.0, timesteps: args.1, context: args.2, y: args.3, guidanceEmbedding: nil)
    XCTAssertEqual(a, b)
  }

  func testBadInputsAreTypedErrors() throws {
    let unet = try UNet(configuration: Self.small, weights: try smallWeights())
    let x = Tensor(zeros: [1, 4, 8, 8])
    let y = Tensor(zeros: [1, 48])
    let context = Tensor(zeros: [1, 3, 64])
    XCTAssertThrowsError(try unet(Tensor(zeros: [1, 4, 7, 8]), timesteps: [1], context: context, y: y))
    XCTAssertThrowsError(try unet(x, timesteps: [1, 2], context: context, y: y))
    XCTAssertThrowsError(try unet(x, timesteps: [1], context: Tensor(zeros: [1, 3, 65]), y: y))
    XCTAssertThrowsError(try unet(x, timesteps: [1], context: context, y: Tensor(zeros: [1, 47])))
    XCTAssertNoThrow(try unet(x, timesteps: [1], context: context, y: y))
    XCTAssertThrowsError(
      try unet.forward(x, timesteps: [1], context: context, y: y, guidanceEmbedding: Tensor(zeros: [1, 15])))
    let bad = UNetConfiguration(modelChannels: 48)
    XCTAssertThrowsError(try bad.validate()) { XCTAssertTrue("\($0)".contains("groups")) }
  }

  func testConfigurationDecodesWithDefaults() throws {
    let json = #"{"guidanceEmbedDim": 512, "contextDim": 4096}"#
    let decoded = try JSONDecoder().decode(UNetConfiguration.self, from: Data(json.utf8))
    XCTAssertEqual(decoded, .cogview3BaseDistilled)
    let round = try JSONDecoder().decode(UNetConfiguration.self, from: JSONEncoder().encode(Self.small))
    XCTAssertEqual(round, Self.small)
  }

  func testBandedConvolutionMatchesWholeImage() throws {
    var rng = SystemRandomNumberGenerator()
    func random(_ shape: [Int]) throws -> Tensor {
      try Tensor(shape: shape, data: (0..<shape.elementCount).map { _ in Float.random(in: -1...1, using: &rng) })
    }
    let cases: [([Int], [Int], Int, Padding2D)] = [
      ([2, 3, 9, 7], [5, 3, 3, 3], 1, .uniform(1)),
      ([1, 4, 10, 10], [4, 4, 3, 3], 2, .vaeDownsample),
      ([1, 4, 11, 6], [2, 4, 3, 3], 2, .uniform(1)),
      ([1, 2, 5, 5], [3, 2, 1, 1], 1, .zero),
    ]
    for (xs, ws, stride, pad) in cases {
      let x = try random(xs)
      let w = try random(ws)
      let b = try random([ws[0]])
      let whole = try Ops.conv2d(x, weight: w, bias: b, stride: stride, padding: pad)
      for budget in [1, 30, 100] {
        let banded = try LayerKernels.conv2dInBands(x, weight: w, bias: b, stride: stride, padding: pad, budget: budget)
        XCTAssertLessThanOrEqual(relativeL2(banded, whole), 1e-6, "\(xs) \(ws) stride \(stride) budget \(budget)")
      }
    }
  }
}
