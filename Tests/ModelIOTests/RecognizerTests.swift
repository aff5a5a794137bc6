import Foundation
import Tensor
import XCTest

@testable import ModelIO

final class RecognizerTests: XCTestCase {
  func params(_ s: [String: [Int]]) -> Int { s.values.reduce(0) { $0 + $1.reduce(1, *) } }

  func testCogView3UNetFromTheReferenceShapes() throws {
    let unet = try KeyTableTests.referenceShapes("UNet")
    XCTAssertEqual(params(unet), 2_906_612_484)  // the total the dump's header states
    var sat: [String: [Int]] = [:]
    for (k, v) in unet { sat["model.diffusion_model." + k] = v }
    let parts = ModelRecognizer.recognize(sat)
    XCTAssertEqual(parts.count, 1)
    let part = try XCTUnwrap(parts.first)
    XCTAssertEqual(part.prefix, "model.diffusion_model.")
    XCTAssertTrue(part.name.hasPrefix("CogView3 base/relay UNet"), part.name)
    guard case .unet(let u) = part.kind else { return XCTFail("not a UNet") }
    XCTAssertEqual(
      u,
      DetectedUNet(
        inChannels: 4, outChannels: 4, modelChannels: 320, channelMult: [1, 2, 4], numResBlocks: 2,
        transformerDepth: [0, 2, 10], middleDepth: 10, contextDim: 4096, admInChannels: 1536, wProjDim: nil))
  }

  func testDistilledUNetsByWProjWidth() throws {
    var unet = try KeyTableTests.referenceShapes("UNet")
    for (section, width, kind) in [
      ("Extra in cogview3_base_distill", 512, "base-distill"),
      ("Extra in cogview3_relay_distill", 256, "relay-distill"),
    ] {
      let extra = try KeyTableTests.referenceShapes(section)
      XCTAssertEqual(extra["w_proj.weight"], [320, width])
      unet["w_proj.weight"] = extra["w_proj.weight"]
      let part = try XCTUnwrap(ModelRecognizer.recognize(unet).first)
      guard case .unet(let u) = part.kind else { return XCTFail("not a UNet") }
      XCTAssertEqual(u.wProjDim, width)
      XCTAssertTrue(part.name.contains("distilled") && part.name.contains(kind), part.name)
    }
    XCTAssertEqual(params(unet.merging(["w_proj.weight": [320, 512]]) { $1 }), 2_906_776_324)
  }

  func testOtherUNetIsNotCalledCogView3() throws {
    var unet = try KeyTableTests.referenceShapes("UNet")
    for (k, v) in unet where k.hasSuffix("attn2.to_k.weight") { unet[k] = [v[0], 2048] }
    let part = try XCTUnwrap(ModelRecognizer.recognize(unet).first)
    XCTAssertEqual(part.name, "sgm UNet (not the CogView3 configuration)")
  }

  func testVAEs() throws {
    let sdxl = try KeyTableTests.referenceShapes("VAE for CogView3 base/relay")
    XCTAssertEqual(params(sdxl), 83_653_863)
    let a = try XCTUnwrap(ModelRecognizer.recognize(sdxl).first)
    XCTAssertEqual(a.name, "SDXL VAE (CogView3 base/relay autoencoder)")
    XCTAssertEqual(
      a.kind,
      .vae(
        config: DetectedVAE(
          inChannels: 3, ch: 128, chMult: [1, 2, 4, 4], numResBlocks: 2, zChannels: 4, midAttention: true,
          quantConv: true)))
    let plus = try KeyTableTests.referenceShapes("VAE for CogView3-Plus")
    XCTAssertEqual(params(plus), 406_100_643)
    XCTAssertEqual(ModelRecognizer.recognize(plus).first?.name, "CogView3-Plus VAE (imagekl_ch16)")
    var prefixed: [String: [Int]] = [:]
    for (k, v) in sdxl { prefixed["first_stage_model." + k] = v }
    XCTAssertEqual(ModelRecognizer.recognize(prefixed).first?.prefix, "first_stage_model.")
  }

  /// HF T5EncoderModel names and shapes for a config (d_model, layers, heads, d_kv, d_ff, vocab).
  static func t5Shapes(d: Int, layers: Int, heads: Int, dkv: Int, dff: Int, vocab: Int) -> [String: [Int]] {
    var s: [String: [Int]] = ["shared.weight": [vocab, d], "encoder.final_layer_norm.weight": [d]]
    for i in 0..<layers {
      let p = "encoder.block.\(i).layer."
      for n in ["q", "k", "v"] { s[p + "0.SelfAttention.\(n).weight"] = [heads * dkv, d] }
      s[p + "0.SelfAttention.o.weight"] = [d, heads * dkv]
      if i == 0 { s[p + "0.SelfAttention.relative_attention_bias.weight"] = [32, heads] }
      s[p + "0.layer_norm.weight"] = [d]
      s[p + "1.DenseReluDense.wi_0.weight"] = [dff, d]
      s[p + "1.DenseReluDense.wi_1.weight"] = [dff, d]
      s[p + "1.DenseReluDense.wo.weight"] = [d, dff]
      s[p + "1.layer_norm.weight"] = [d]
    }
    return s
  }

  func testT5XXLEncoder() throws {
    // CogVideoX-2b text_encoder config (reference §1.2): d_model 4096, 24 layers, 64 heads, d_kv 64, d_ff 10240.
    let xxl = Self.t5Shapes(d: 4096, layers: 24, heads: 64, dkv: 64, dff: 10240, vocab: 32128)
    let part = try XCTUnwrap(ModelRecognizer.recognize(xxl).first)
    XCTAssertEqual(part.name, "T5 v1.1 XXL encoder (CogView3 text encoder)")
    XCTAssertEqual(
      part.kind,
      .t5(
        config: DetectedT5(
          vocabSize: 32128, dModel: 4096, numLayers: 24, numHeads: 64, dKV: 64, dFF: 10240, gatedFF: true,
          relativeAttentionBuckets: 32)))
    let small = Self.t5Shapes(d: 8, layers: 2, heads: 2, dkv: 4, dff: 12, vocab: 16)
    XCTAssertEqual(ModelRecognizer.recognize(small).first?.name, "T5 encoder (not the CogView3 configuration)")
  }

  func testNothingRecognizedInUnrelatedKeys() {
    XCTAssertTrue(ModelRecognizer.recognize(["a.weight": [2, 2], "input_blocks.0.0.weight": [3]]).isEmpty)
  }
}

final class ModelSummaryTests: XCTestCase {
  func testSATSummary() throws {
    let s = try ModelSummary(path: Fixture.path("sat"))
    let expected = Fixture.tensors("sat")
    XCTAssertEqual(s.format, .satFolder)
    XCTAssertEqual(s.tensorCount, expected.count)
    XCTAssertEqual(s.parameters, expected.values.reduce(0) { $0 + $1.shape.reduce(1, *) })
    XCTAssertEqual(s.dtypes, expected.values.reduce(into: [:]) { $0[$1.dtype, default: 0] += 1 })
    XCTAssertEqual(s.ignoredPrefixes, ["first_stage_model.": 2, "conditioner.": 2])
  }

  func testFormatsAreSniffedFromContent() throws {
    XCTAssertEqual(try ModelSummary(path: Fixture.path("plain.safetensors")).format, .safetensors)
    XCTAssertEqual(try ModelSummary(path: Fixture.path("views.pt")).format, .torchZip)
    let hf = try ModelSummary(path: Fixture.path("hf_sharded"))
    XCTAssertEqual(hf.format, .hfFolder)
    XCTAssertEqual(hf.recognized.first?.name, "T5 encoder (not the CogView3 configuration)")
    let plain = Fixture.tensors("plain")
    let st = try ModelSummary(path: Fixture.path("plain.safetensors"))
    XCTAssertEqual(
      st.bytes, plain.values.reduce(0) { $0 + $1.shape.reduce(1, *) * (DType(rawValue: $1.dtype)?.byteSize ?? 0) })
    assertModelIOError(["legacy"]) { _ = try ModelSummary(path: Fixture.path("bad/evil_eval.pkl")) }
    assertModelIOError(["neither a SAT checkpoint"]) { _ = try ModelSummary(path: Fixture.path("png")) }
  }
}
