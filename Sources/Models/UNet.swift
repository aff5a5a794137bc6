import Foundation
import ModelIO
import Tensor

/// The sgm `UNetModel` hyper-parameters that CogView3 uses (official reference §3.1,
/// `sat/configs/cogview3_base.yaml` l.33–52). Fields keep the sgm names in camel case; every field has
/// a default (the CogView3 base value), and decoding fills absent fields with it.
public struct UNetConfiguration: Codable, Sendable, Hashable {
  /// Latent channels in (`in_channels`).
  public var inChannels: Int = 4
  /// Predicted channels out (`out_channels`).
  public var outChannels: Int = 4
  /// Width of level 0 (`model_channels`); the time embedding is 4× this.
  public var modelChannels: Int = 320
  /// Width multiplier per level (`channel_mult`).
  public var channelMult: [Int] = [1, 2, 4]
  /// ResBlocks per level on the way down; the way up has one more (`num_res_blocks`).
  public var numResBlocks: Int = 2
  /// Downsampling factors (1 = level 0, 2 = level 1, …) whose blocks carry a SpatialTransformer
  /// (`attention_resolutions`); the middle block has one when this is not empty.
  public var attentionResolutions: [Int] = [4, 2]
  /// Transformer blocks per SpatialTransformer, per level (`transformer_depth`; unused at levels
  /// without attention).
  public var transformerDepth: [Int] = [1, 2, 10]
  /// Depth of the middle SpatialTransformer (`transformer_depth_middle`); nil = the last level's.
  public var transformerDepthMiddle: Int? = nil
  /// Width of one attention head (`num_head_channels`); heads = channels / this.
  public var numHeadChannels: Int = 64
  /// Width of the cross-attention context (`context_dim`; T5-XXL: 4096).
  public var contextDim: Int = 4096
  /// Width of the vector conditioning y (`adm_in_channels`; size/crop embeddings: 1536).
  public var admInChannels: Int = 1536
  /// Width of the guidance embedding of the distilled models (`cfg_cond_embed_dim`, the input width
  /// of `w_proj`); nil for the undistilled models.
  public var guidanceEmbedDim: Int? = nil
  /// GroupNorm groups (`GroupNorm32`).
  public var groups: Int = 32

  public init(
    inChannels: Int = 4, outChannels: Int = 4, modelChannels: Int = 320, channelMult: [Int] = [1, 2, 4],
    numResBlocks: Int = 2, attentionResolutions: [Int] = [4, 2], transformerDepth: [Int] = [1, 2, 10],
    transformerDepthMiddle: Int? = nil, numHeadChannels: Int = 64, contextDim: Int = 4096,
    admInChannels: Int = 1536, guidanceEmbedDim: Int? = nil, groups: Int = 32
  ) {
    self.inChannels = inChannels
    self.outChannels = outChannels
    self.modelChannels = modelChannels
    self.channelMult = channelMult
    self.numResBlocks = numResBlocks
    self.attentionResolutions = attentionResolutions
    self.transformerDepth = transformerDepth
    self.transformerDepthMiddle = transformerDepthMiddle
    self.numHeadChannels = numHeadChannels
    self.contextDim = contextDim
    self.admInChannels = admInChannels
    self.guidanceEmbedDim = guidanceEmbedDim
    self.groups = groups
  }

  /// CogView3 base (512², 2,906,612,484 parameters).
  public static let cogview3Base = UNetConfiguration()
  /// CogView3 relay SR: the same architecture as base (`cogview3_relay.yaml` l.35–55).
  public static let cogview3Relay = UNetConfiguration()
  /// CogView3 base distilled (4/8 steps): base + `w_proj` 512 → 320 (`cogview3_base_distill_4step.yaml` l.53).
  public static let cogview3BaseDistilled = UNetConfiguration(guidanceEmbedDim: 512)
  /// CogView3 relay distilled (1/2 steps): base + `w_proj` 256 → 320 (`cogview3_relay_distill_1step.yaml` l.55).
  public static let cogview3RelayDistilled = UNetConfiguration(guidanceEmbedDim: 256)

  /// The CogView3 preset that fits `weights` (keys without the SAT prefix): base/relay, or the distilled
  /// variant whose `w_proj` width the file's `w_proj.weight` `[320, w_dim]` shows. The released 8-step base
  /// and 2-step relay checkpoints have no published config (official §7), so reading w_dim from the file
  /// is the only way to know it.
  public static func cogview3(matching weights: any TensorSource) -> UNetConfiguration {
    var config = UNetConfiguration.cogview3Base
    if let w = try? weights.stored("w_proj.weight"), w.shape.count == 2 { config.guidanceEmbedDim = w.shape[1] }
    return config
  }

  /// The time-embedding width (4 × model_channels).
  public var timeEmbedDim: Int { 4 * modelChannels }
  /// The middle SpatialTransformer's depth.
  public var middleDepth: Int { transformerDepthMiddle ?? transformerDepth.last ?? 0 }
  /// Latent sides must be multiples of this (one stride-2 conv per level but the last).
  public var sizeMultiple: Int { 1 << max(channelMult.count - 1, 0) }

  /// Throws when the fields cannot describe a network (empty levels, widths not divisible by the
  /// group or head width, a depth list of the wrong length).
  public func validate() throws {
    func bad(_ detail: String) -> TensorError { .invalidArgument(op: "UNetConfiguration", detail: detail) }
    guard !channelMult.isEmpty, channelMult.allSatisfy({ $0 > 0 }) else {
      throw bad("channel_mult must be positive, non-empty")
    }
    guard transformerDepth.count == channelMult.count else {
      throw bad("transformer_depth has \(transformerDepth.count) entries for \(channelMult.count) levels")
    }
    guard inChannels > 0, outChannels > 0, modelChannels > 0, numResBlocks > 0, contextDim > 0, admInChannels > 0,
      numHeadChannels > 0, groups > 0
    else { throw bad("widths, counts and groups must be positive") }
    if let g = guidanceEmbedDim, g <= 0 { throw bad("cfg_cond_embed_dim must be positive") }
    for c in channelMult.map({ $0 * modelChannels }) {
      guard c % groups == 0 else { throw bad("\(groups) groups do not divide \(c) channels") }
      guard c % numHeadChannels == 0 else { throw bad("head width \(numHeadChannels) does not divide \(c) channels") }
    }
  }

  private enum CodingKeys: String, CodingKey {
    case inChannels, outChannels, modelChannels, channelMult, numResBlocks, attentionResolutions
    case transformerDepth, transformerDepthMiddle, numHeadChannels, contextDim, admInChannels
    case guidanceEmbedDim, groups
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = UNetConfiguration()
    inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? d.inChannels
    outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels) ?? d.outChannels
    modelChannels = try c.decodeIfPresent(Int.self, forKey: .modelChannels) ?? d.modelChannels
    channelMult = try c.decodeIfPresent([Int].self, forKey: .channelMult) ?? d.channelMult
    numResBlocks = try c.decodeIfPresent(Int.self, forKey: .numResBlocks) ?? d.numResBlocks
    attentionResolutions = try c.decodeIfPresent([Int].self, forKey: .attentionResolutions) ?? d.attentionResolutions
    transformerDepth = try c.decodeIfPresent([Int].self, forKey: .transformerDepth) ?? d.transformerDepth
    transformerDepthMiddle = try c.decodeIfPresent(Int.self, forKey: .transformerDepthMiddle)
    numHeadChannels = try c.decodeIfPresent(Int.self, forKey: .numHeadChannels) ?? d.numHeadChannels
    contextDim = try c.decodeIfPresent(Int.self, forKey: .contextDim) ?? d.contextDim
    admInChannels = try c.decodeIfPresent(Int.self, forKey: .admInChannels) ?? d.admInChannels
    guidanceEmbedDim = try c.decodeIfPresent(Int.self, forKey: .guidanceEmbedDim)
    groups = try c.decodeIfPresent(Int.self, forKey: .groups) ?? d.groups
  }
}

/// One layer of a UNet block (`TimestepEmbedSequential` element).
enum UNetLayer {
  case conv(ConvLayer)
  case res(UNetResBlock)
  case transformer(SpatialTransformer)
  /// Conv 3×3, stride 2, pad 1 (key `op`).
  case down(ConvLayer)
  /// Nearest ×2, then conv 3×3 pad 1 (key `conv`).
  case up(ConvLayer)
}

/// The CogView3 UNet (sgm `UNetModel`, SDXL layout with T5 context and 1536-wide vector
/// conditioning), predicting ε. Weights are read by their SAT names relative to
/// `model.diffusion_model.` (wrap a checkpoint in `PrefixedTensorSource(…, stripping: UNet.satPrefix)`).
/// Source: THUDM/CogView3 sat/sgm/modules/diffusionmodules/openaimodel.py `UNetModel.__init__`/`forward`.
public struct UNet: Sendable {
  /// The key prefix of the UNet inside a SAT checkpoint.
  public static let satPrefix = "model.diffusion_model."

  /// The UNet's tensors inside `checkpoint`: a SAT state dict (keys under `model.diffusion_model.`, next
  /// to `conditioner.*` or `first_stage_model.*` ones) is viewed through the prefix; a file that holds
  /// only the UNet's keys is used as it is.
  public static func weights(in checkpoint: any TensorSource) -> any TensorSource {
    checkpoint.keys.contains { $0.hasPrefix(satPrefix) }
      ? PrefixedTensorSource(checkpoint, stripping: satPrefix) : checkpoint
  }

  public let configuration: UNetConfiguration
  /// Query rows per attention chunk (bounds the score matrix at chunk × keys per head).
  public var queryChunk: Int = 1024
  /// FLOPs of the GEMM-shaped work done so far (reset it between measurements).
  public var flopCounter: FlopCounter { flops }

  let timeEmbed0: DenseLayer, timeEmbed2: DenseLayer
  let labelEmb0: DenseLayer, labelEmb2: DenseLayer
  let wProj: DenseLayer?
  let inputBlocks: [[UNetLayer]]
  let middleBlock: [UNetLayer]
  let outputBlocks: [[UNetLayer]]
  let outNorm: GroupNormLayer
  let outConv: ConvLayer
  private let flops: FlopCounter

  /// Builds the network and binds its weights from `weights` (keys without the SAT prefix). Throws
  /// `WeightMismatchError` listing every missing, unexpected and mis-shaped tensor, naming the file.
  public init(
    configuration: UNetConfiguration, weights: any TensorSource, residency: WeightResidency = .widenPerUse,
    name: String = "UNet"
  ) throws {
    try configuration.validate()
    let binder = WeightBinder(source: weights, residency: residency)
    self.init(configuration, binder)
    try binder.finish(model: name)
  }

  /// Every parameter key and shape the configuration needs (no weights are read).
  public static func expectedShapes(_ configuration: UNetConfiguration) throws -> [String: [Int]] {
    try configuration.validate()
    let binder = WeightBinder(source: nil, residency: .widenPerUse)
    _ = UNet(configuration, binder)
    return binder.expected
  }

  private init(_ c: UNetConfiguration, _ binder: WeightBinder) {
    let s = WeightScope(binder)
    configuration = c
    flops = binder.flops
    let mc = c.modelChannels
    let ted = c.timeEmbedDim
    timeEmbed0 = DenseLayer(s["time_embed.0"], in: mc, out: ted)
    timeEmbed2 = DenseLayer(s["time_embed.2"], in: ted, out: ted)
    labelEmb0 = DenseLayer(s["label_emb.0.0"], in: c.admInChannels, out: ted)
    labelEmb2 = DenseLayer(s["label_emb.0.2"], in: ted, out: ted)
    wProj = c.guidanceEmbedDim.map { DenseLayer(s["w_proj"], in: $0, out: mc, bias: false) }

    func res(_ key: String, _ i: Int, _ o: Int) -> UNetLayer {
      .res(UNetResBlock(s[key], in: i, out: o, embedding: ted, groups: c.groups))
    }
    func st(_ key: String, _ ch: Int, _ depth: Int) -> UNetLayer {
      .transformer(
        SpatialTransformer(
          s[key], channels: ch, contextChannels: c.contextDim, heads: ch / c.numHeadChannels, depth: depth,
          groups: c.groups))
    }

    var input: [[UNetLayer]] = [
      [.conv(ConvLayer(s["input_blocks.0.0"], in: c.inChannels, out: mc, kernel: 3, padding: .uniform(1)))]
    ]
    var skipChannels = [mc]
    var ch = mc
    var ds = 1
    for (level, mult) in c.channelMult.enumerated() {
      for _ in 0..<c.numResBlocks {
        let key = "input_blocks.\(input.count)"
        var layers = [res(key + ".0", ch, mult * mc)]
        ch = mult * mc
        if c.attentionResolutions.contains(ds) { layers.append(st(key + ".1", ch, c.transformerDepth[level])) }
        input.append(layers)
        skipChannels.append(ch)
      }
      if level != c.channelMult.count - 1 {
        let key = "input_blocks.\(input.count).0.op"
        input.append([.down(ConvLayer(s[key], in: ch, out: ch, kernel: 3, stride: 2, padding: .uniform(1)))])
        skipChannels.append(ch)
        ds *= 2
      }
    }
    inputBlocks = input

    if c.attentionResolutions.isEmpty {
      middleBlock = [res("middle_block.0", ch, ch), res("middle_block.1", ch, ch)]
    } else {
      middleBlock = [
        res("middle_block.0", ch, ch), st("middle_block.1", ch, c.middleDepth), res("middle_block.2", ch, ch),
      ]
    }

    var output: [[UNetLayer]] = []
    for (level, mult) in c.channelMult.enumerated().reversed() {
      for i in 0...c.numResBlocks {
        let skip = skipChannels.removeLast()
        let key = "output_blocks.\(output.count)"
        var layers = [res(key + ".0", ch + skip, mc * mult)]
        ch = mc * mult
        if c.attentionResolutions.contains(ds) { layers.append(st(key + ".1", ch, c.transformerDepth[level])) }
        if level > 0 && i == c.numResBlocks {
          let upKey = "\(key).\(layers.count).conv"
          layers.append(.up(ConvLayer(s[upKey], in: ch, out: ch, kernel: 3, padding: .uniform(1))))
          ds /= 2
        }
        output.append(layers)
      }
    }
    outputBlocks = output
    outNorm = GroupNormLayer(s["out.0"], channels: ch, groups: c.groups, eps: 1e-5)
    outConv = ConvLayer(s["out.2"], in: mc, out: c.outChannels, kernel: 3, padding: .uniform(1))
  }

  /// ε-prediction for `x` `[B, 4, H, W]` at DDPM timesteps `timesteps` (one per batch item, the integer
  /// table index as Float), cross-attention `context` `[B, T, context_dim]` and vector conditioning `y`
  /// `[B, adm_in_channels]`. `guidance` (distilled models only) is the CFG scale w the model was distilled
  /// for (7.5); it enters as `w_proj(guidance_scale_embedding(w))` added to the timestep sinusoid.
  public func callAsFunction(
    _ x: Tensor, timesteps: [Float], context: Tensor, y: Tensor, guidance: Float? = nil
  ) throws -> Tensor {
    var embedding: Tensor? = nil
    if let guidance, let dim = configuration.guidanceEmbedDim {
      embedding = Embeddings.guidance([Float](repeating: guidance, count: timesteps.count), dim: dim)
    } else if guidance != nil {
      throw TensorError.invalidArgument(
        op: "UNet", detail: "a guidance scale was given but this model has no w_proj (not a distilled configuration)")
    }
    return try forward(x, timesteps: timesteps, context: context, y: y, guidanceEmbedding: embedding)
  }

  /// As `callAsFunction`, with the guidance embedding `[B, cfg_cond_embed_dim]` given directly.
  public func forward(
    _ x: Tensor, timesteps: [Float], context: Tensor, y: Tensor, guidanceEmbedding: Tensor?
  ) throws -> Tensor {
    try checkInputs(x, timesteps, context, y, guidanceEmbedding)
    var tEmb = Embeddings.timestep(timesteps, dim: configuration.modelChannels)
    if let guidanceEmbedding, let wProj {
      try LayerKernels.addInPlace(&tEmb, try wProj(guidanceEmbedding), op: "UNet w_proj")
    }
    var t = try timeEmbed0(tEmb)
    LayerKernels.siluInPlace(&t)
    var emb = try timeEmbed2(t)
    var l = try labelEmb0(y)
    LayerKernels.siluInPlace(&l)
    try LayerKernels.addInPlace(&emb, try labelEmb2(l), op: "UNet label_emb")
    LayerKernels.siluInPlace(&emb)  // every ResBlock applies SiLU before emb_layers.1

    var skips: [Tensor] = []
    skips.reserveCapacity(inputBlocks.count)
    var h = x
    for block in inputBlocks {
      h = try run(block, h, embSiLU: emb, context: context)
      skips.append(h)
    }
    h = try run(middleBlock, h, embSiLU: emb, context: context)
    for block in outputBlocks {
      h = try Ops.concat([h, skips.removeLast()], axis: 1)
      h = try run(block, h, embSiLU: emb, context: context)
    }
    h = try outNorm(h)
    LayerKernels.siluInPlace(&h)
    return try outConv(h)
  }

  private func run(_ block: [UNetLayer], _ x: Tensor, embSiLU: Tensor, context: Tensor) throws -> Tensor {
    var h = x
    for layer in block {
      switch layer {
      case .conv(let conv), .down(let conv): h = try conv(h)
      case .res(let r): h = try r(h, embSiLU: embSiLU)
      case .transformer(let t): h = try t(h, context: context, queryChunk: queryChunk)
      case .up(let conv): h = try conv(try Ops.upsampleNearest2x(h))
      }
    }
    return h
  }

  private func checkInputs(
    _ x: Tensor, _ t: [Float], _ context: Tensor, _ y: Tensor, _ g: Tensor?
  ) throws {
    let c = configuration
    func fail(_ shapes: [[Int]], _ detail: String) -> TensorError {
      .shapeMismatch(op: "UNet", shapes: shapes, detail: detail)
    }
    guard x.rank == 4, x.shape[1] == c.inChannels, x.shape[0] > 0 else {
      throw fail([x.shape], "x must be [B, \(c.inChannels), H, W]")
    }
    let b = x.shape[0]
    guard x.shape[2] > 0, x.shape[3] > 0, x.shape[2] % c.sizeMultiple == 0, x.shape[3] % c.sizeMultiple == 0 else {
      throw fail([x.shape], "latent height and width must be positive multiples of \(c.sizeMultiple)")
    }
    guard t.count == b else { throw fail([x.shape, [t.count]], "one timestep per batch item is needed") }
    guard context.rank == 3, context.shape[0] == b, context.shape[2] == c.contextDim, context.shape[1] > 0 else {
      throw fail([x.shape, context.shape], "context must be [B, T, \(c.contextDim)]")
    }
    guard y.shape == [b, c.admInChannels] else {
      throw fail([x.shape, y.shape], "y must be [B, \(c.admInChannels)]")
    }
    if let g {
      guard let dim = c.guidanceEmbedDim else {
        throw TensorError.invalidArgument(
          op: "UNet", detail: "a guidance embedding was given but this model has no w_proj")
      }
      guard g.shape == [b, dim] else { throw fail([g.shape], "guidance embedding must be [B, \(dim)]") }
    }
  }
}
