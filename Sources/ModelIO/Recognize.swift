import Foundation
import Tensor

/// UNet configuration read off the shapes of an sgm `UNetModel` state dict.
public struct DetectedUNet: Sendable, Hashable, Codable {
  public var inChannels: Int
  public var outChannels: Int
  public var modelChannels: Int
  public var channelMult: [Int]
  public var numResBlocks: Int
  /// Transformer blocks per level of the input path (0 where a level has no attention).
  public var transformerDepth: [Int]
  public var middleDepth: Int
  public var contextDim: Int?
  public var admInChannels: Int?
  /// Width of the distilled models' guidance embedding (`w_proj.weight` is [model_channels, w_dim]).
  public var wProjDim: Int?
}

/// KL autoencoder configuration read off LDM names.
public struct DetectedVAE: Sendable, Hashable, Codable {
  public var inChannels: Int
  public var ch: Int
  public var chMult: [Int]
  public var numResBlocks: Int
  public var zChannels: Int
  public var midAttention: Bool
  public var quantConv: Bool
}

/// T5 encoder configuration read off Hugging Face names.
public struct DetectedT5: Sendable, Hashable, Codable {
  public var vocabSize: Int
  public var dModel: Int
  public var numLayers: Int
  public var numHeads: Int
  public var dKV: Int
  public var dFF: Int
  public var gatedFF: Bool
  public var relativeAttentionBuckets: Int
}

/// A model part recognized in a set of tensors.
public struct RecognizedPart: Sendable, Hashable, Codable {
  public enum Kind: Sendable, Hashable, Codable {
    case unet(config: DetectedUNet)
    case vae(config: DetectedVAE)
    case t5(config: DetectedT5)
  }
  /// The key prefix the part lives under ("" for a bare state dict).
  public var prefix: String
  public var kind: Kind
  /// What it is, in words: "CogView3 base/relay UNet", "SDXL VAE", ...
  public var name: String
}

/// Recognizes CogView3's parts (reference/cogview3-official.md §3, §4, §9) from names and shapes alone.
public enum ModelRecognizer {
  public static func recognize(_ shapes: [String: [Int]]) -> [RecognizedPart] {
    var parts: [RecognizedPart] = []
    for prefix in anchors(shapes, "input_blocks.0.0.weight") {
      if let u = unet(shapes, prefix) {
        parts.append(RecognizedPart(prefix: prefix, kind: .unet(config: u), name: name(u)))
      }
    }
    for prefix in anchors(shapes, "encoder.conv_in.weight") {
      if let v = vae(shapes, prefix) {
        parts.append(RecognizedPart(prefix: prefix, kind: .vae(config: v), name: name(v)))
      }
    }
    for prefix in anchors(shapes, "encoder.block.0.layer.0.SelfAttention.q.weight") {
      if let t = t5(shapes, prefix) {
        parts.append(RecognizedPart(prefix: prefix, kind: .t5(config: t), name: name(t)))
      }
    }
    return parts.sorted { $0.prefix < $1.prefix }
  }

  public static func recognize(_ source: any TensorSource) -> [RecognizedPart] {
    var shapes: [String: [Int]] = [:]
    for k in source.keys { if let i = try? source.info(k) { shapes[k] = i.shape } }
    return recognize(shapes)
  }

  /// Prefixes p such that p + anchor is a key.
  static func anchors(_ shapes: [String: [Int]], _ anchor: String) -> [String] {
    shapes.keys.filter {
      $0.hasSuffix(anchor) && ($0.count == anchor.count || $0.dropLast(anchor.count).hasSuffix("."))
    }
    .map { String($0.dropLast(anchor.count)) }.sorted()
  }

  /// Largest N + 1 over keys `prefix + N + rest` (0 if none).
  static func count(_ shapes: [String: [Int]], _ prefix: String) -> Int {
    var n = 0
    for k in shapes.keys where k.hasPrefix(prefix) {
      let digits = k.dropFirst(prefix.count).prefix { $0.isNumber }
      if let i = Int(digits), k.dropFirst(prefix.count + digits.count).first == "." { n = max(n, i + 1) }
    }
    return n
  }

  static func unet(_ s: [String: [Int]], _ p: String) -> DetectedUNet? {
    guard let conv = s[p + "input_blocks.0.0.weight"], conv.count == 4, let out = s[p + "out.2.weight"], out.count == 4,
      s[p + "time_embed.0.weight"] != nil
    else { return nil }
    let mc = conv[0]
    guard mc > 0 else { return nil }
    var mult: [Int] = []
    var depth: [Int] = []
    var resBlocks = 0
    var current = 0
    var levelBlocks = 0
    var levelDepth = 0
    let n = count(s, p + "input_blocks.")
    for i in 1..<max(n, 1) {
      let b = p + "input_blocks.\(i)."
      if s[b + "0.op.weight"] != nil {
        mult.append(current / mc)
        depth.append(levelDepth)
        resBlocks = max(resBlocks, levelBlocks)
        levelBlocks = 0
        levelDepth = 0
        continue
      }
      guard let w = s[b + "0.in_layers.2.weight"], !w.isEmpty else { return nil }
      current = w[0]
      levelBlocks += 1
      levelDepth = max(levelDepth, count(s, b + "1.transformer_blocks."))
    }
    guard current > 0 else { return nil }  // no ResBlock at all: not a UNet we can describe
    mult.append(current / mc)
    depth.append(levelDepth)
    resBlocks = max(resBlocks, levelBlocks)
    var context: Int?
    for (k, v) in s where k.hasPrefix(p) && k.hasSuffix(".attn2.to_k.weight") && v.count == 2 { context = v[1] }
    return DetectedUNet(
      inChannels: conv[1], outChannels: out[0], modelChannels: mc, channelMult: mult, numResBlocks: resBlocks,
      transformerDepth: depth, middleDepth: count(s, p + "middle_block.1.transformer_blocks."), contextDim: context,
      admInChannels: s[p + "label_emb.0.0.weight"].flatMap { $0.count == 2 ? $0[1] : nil },
      wProjDim: s[p + "w_proj.weight"].flatMap { $0.count == 2 ? $0[1] : nil })
  }

  static func vae(_ s: [String: [Int]], _ p: String) -> DetectedVAE? {
    guard let conv = s[p + "encoder.conv_in.weight"], conv.count == 4, let dec = s[p + "decoder.conv_in.weight"],
      dec.count == 4
    else { return nil }
    let ch = conv[0]
    guard ch > 0 else { return nil }
    let levels = count(s, p + "encoder.down.")
    var mult: [Int] = []
    for i in 0..<levels {
      guard let w = s[p + "encoder.down.\(i).block.0.conv1.weight"], !w.isEmpty else { return nil }
      mult.append(w[0] / ch)
    }
    return DetectedVAE(
      inChannels: conv[1], ch: ch, chMult: mult, numResBlocks: count(s, p + "encoder.down.0.block."),
      zChannels: dec[1], midAttention: s[p + "encoder.mid.attn_1.q.weight"] != nil,
      quantConv: s[p + "quant_conv.weight"] != nil)
  }

  static func t5(_ s: [String: [Int]], _ p: String) -> DetectedT5? {
    guard let q = s[p + "encoder.block.0.layer.0.SelfAttention.q.weight"], q.count == 2,
      let bias = s[p + "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"], bias.count == 2,
      bias[1] > 0
    else { return nil }
    let ff = p + "encoder.block.0.layer.1.DenseReluDense."
    let gated = s[ff + "wi_0.weight"] != nil
    let dff = (s[ff + (gated ? "wi_0.weight" : "wi.weight")] ?? [0])[0]
    return DetectedT5(
      vocabSize: (s[p + "shared.weight"] ?? s[p + "encoder.embed_tokens.weight"] ?? [0])[0], dModel: q[1],
      numLayers: count(s, p + "encoder.block."), numHeads: bias[1], dKV: q[0] / bias[1], dFF: dff, gatedFF: gated,
      relativeAttentionBuckets: bias[0])
  }

  static func name(_ u: DetectedUNet) -> String {
    let cogview =
      u.modelChannels == 320 && u.channelMult == [1, 2, 4] && u.numResBlocks == 2
      && u.contextDim == 4096 && u.admInChannels == 1536 && u.inChannels == 4 && u.outChannels == 4
      && u.transformerDepth == [0, 2, 10] && u.middleDepth == 10
    guard cogview else { return "sgm UNet (not the CogView3 configuration)" }
    switch u.wProjDim {
    case nil: return "CogView3 base/relay UNet (the two share one architecture; shapes cannot tell them apart)"
    case 512?: return "CogView3 distilled UNet, w_proj width 512 (base-distill 4/8-step)"
    case 256?: return "CogView3 distilled UNet, w_proj width 256 (relay-distill 1/2-step)"
    case let w?: return "CogView3-layout distilled UNet, w_proj width \(w)"
    }
  }

  static func name(_ v: DetectedVAE) -> String {
    if v.ch == 128 && v.chMult == [1, 2, 4, 4] && v.zChannels == 4 && v.numResBlocks == 2 && v.midAttention
      && v.quantConv
    {
      return "SDXL VAE (CogView3 base/relay autoencoder)"
    }
    if v.ch == 128 && v.chMult == [1, 4, 8, 8] && v.zChannels == 16 && v.numResBlocks == 3 && !v.midAttention {
      return "CogView3-Plus VAE (imagekl_ch16)"
    }
    return "KL autoencoder (LDM names, not a CogView3 configuration)"
  }

  static func name(_ t: DetectedT5) -> String {
    if t.dModel == 4096 && t.numLayers == 24 && t.numHeads == 64 && t.dKV == 64 && t.dFF == 10240 && t.gatedFF
      && t.vocabSize == 32128
    {
      return "T5 v1.1 XXL encoder (CogView3 text encoder)"
    }
    return "T5 encoder (not the CogView3 configuration)"
  }
}
