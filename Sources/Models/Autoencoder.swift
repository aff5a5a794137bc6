import Foundation
import ModelIO
import Tensor

/// The KL autoencoder's hyper-parameters (LDM `ddconfig` + `embed_dim`; official reference §4.1).
/// Each field has a default (the SDXL VAE's), and decoding fills absent fields with it.
public struct AutoencoderConfiguration: Codable, Sendable, Hashable {
  /// Image channels in (`in_channels`).
  public var inChannels: Int = 3
  /// Image channels out (`out_ch`).
  public var outChannels: Int = 3
  /// Width of level 0 (`ch`).
  public var channels: Int = 128
  /// Width multiplier per level (`ch_mult`); the image is downsampled 2^(levels−1) times.
  public var channelMult: [Int] = [1, 2, 4, 4]
  /// ResnetBlocks per level in the encoder; the decoder has one more (`num_res_blocks`).
  public var numResBlocks: Int = 2
  /// Latent channels (`z_channels`); the encoder emits twice this (mean and log-variance).
  public var zChannels: Int = 4
  /// Channels of quant_conv's output half / post_quant_conv (`embed_dim`).
  public var embedDim: Int = 4
  /// Whether the middle blocks carry the single-head attention `mid.attn_1` (`mid_attn`).
  public var midAttention: Bool = true
  /// GroupNorm groups (`Normalize`: 32, eps 1e-6).
  public var groups: Int = 32
  /// The latent scale the diffusion model sees (`scale_factor`; SDXL: 0.13025).
  public var scaleFactor: Float = 0.13025

  public init(
    inChannels: Int = 3, outChannels: Int = 3, channels: Int = 128, channelMult: [Int] = [1, 2, 4, 4],
    numResBlocks: Int = 2, zChannels: Int = 4, embedDim: Int = 4, midAttention: Bool = true, groups: Int = 32,
    scaleFactor: Float = 0.13025
  ) {
    self.inChannels = inChannels
    self.outChannels = outChannels
    self.channels = channels
    self.channelMult = channelMult
    self.numResBlocks = numResBlocks
    self.zChannels = zChannels
    self.embedDim = embedDim
    self.midAttention = midAttention
    self.groups = groups
    self.scaleFactor = scaleFactor
  }

  /// The SDXL VAE used by CogView3 base and relay (`sdxl_vae.safetensors`, 83,653,863 parameters).
  public static let sdxl = AutoencoderConfiguration()

  /// Image sides must be multiples of this.
  public var downsampleFactor: Int { 1 << max(channelMult.count - 1, 0) }

  public func validate() throws {
    func bad(_ detail: String) -> TensorError { .invalidArgument(op: "AutoencoderConfiguration", detail: detail) }
    guard !channelMult.isEmpty, channelMult.allSatisfy({ $0 > 0 }) else {
      throw bad("ch_mult must be positive, non-empty")
    }
    guard inChannels > 0, outChannels > 0, channels > 0, numResBlocks > 0, zChannels > 0, embedDim > 0, groups > 0
    else { throw bad("widths, counts and groups must be positive") }
    for c in channelMult.map({ $0 * channels }) where c % groups != 0 {
      throw bad("\(groups) groups do not divide \(c) channels")
    }
    guard scaleFactor > 0, scaleFactor.isFinite else { throw bad("scale_factor must be positive") }
  }

  private enum CodingKeys: String, CodingKey {
    case inChannels, outChannels, channels, channelMult, numResBlocks, zChannels, embedDim, midAttention
    case groups, scaleFactor
  }

  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = AutoencoderConfiguration()
    inChannels = try c.decodeIfPresent(Int.self, forKey: .inChannels) ?? d.inChannels
    outChannels = try c.decodeIfPresent(Int.self, forKey: .outChannels) ?? d.outChannels
    channels = try c.decodeIfPresent(Int.self, forKey: .channels) ?? d.channels
    channelMult = try c.decodeIfPresent([Int].self, forKey: .channelMult) ?? d.channelMult
    numResBlocks = try c.decodeIfPresent(Int.self, forKey: .numResBlocks) ?? d.numResBlocks
    zChannels = try c.decodeIfPresent(Int.self, forKey: .zChannels) ?? d.zChannels
    embedDim = try c.decodeIfPresent(Int.self, forKey: .embedDim) ?? d.embedDim
    midAttention = try c.decodeIfPresent(Bool.self, forKey: .midAttention) ?? d.midAttention
    groups = try c.decodeIfPresent(Int.self, forKey: .groups) ?? d.groups
    scaleFactor = try c.decodeIfPresent(Float.self, forKey: .scaleFactor) ?? d.scaleFactor
  }
}

/// The diagonal Gaussian the encoder predicts: `mean` and `logVariance` (already clamped to [−30, 20]),
/// both `[B, embed_dim, H/f, W/f]`, unscaled (multiply by `scaleFactor` for the diffusion model).
/// Source: THUDM/CogView3 sat/sgm/modules/distributions/distributions.py `DiagonalGaussianDistribution`.
public struct LatentDistribution: Sendable {
  public let mean: Tensor
  public let logVariance: Tensor

  /// mean + exp(½·logvar)·ε for the given noise `ε` (same shape; e.g. seeded torch-compatible randn).
  public func sample(noise: Tensor) throws -> Tensor {
    guard noise.shape == mean.shape else {
      throw TensorError.shapeMismatch(
        op: "LatentDistribution.sample", shapes: [mean.shape, noise.shape], detail: "noise must match the latent")
    }
    var out = mean
    out.withUnsafeMutableBufferPointer { po in
      logVariance.withUnsafeBufferPointer { pl in
        noise.withUnsafeBufferPointer { pn in
          for i in 0..<po.count { po[i] += Foundation.exp(0.5 * pl[i]) * pn[i] }
        }
      }
    }
    return out
  }

  /// As `sample(noise:)`, drawing ε of the latent's shape from `noise` (called once).
  public func sample(noise: ([Int]) throws -> Tensor) throws -> Tensor {
    try sample(noise: noise(mean.shape))
  }
}

/// The KL autoencoder (LDM `AutoencoderKL`) with the SDXL VAE architecture: encoder → quant_conv →
/// posterior; post_quant_conv → decoder. LDM key names (`encoder.*`, `decoder.*`, `quant_conv`,
/// `post_quant_conv`). Images are `[B, 3, H, W]` in [−1, 1].
/// Source: THUDM/CogView3 sat/sgm/models/autoencoder.py `AutoencoderKL`, sat/sgm/modules/diffusionmodules/model.py.
public struct Autoencoder: Sendable {
  public let configuration: AutoencoderConfiguration
  /// Query rows per mid-attention chunk (the score matrix is at most chunk × H·W/f² floats).
  public var queryChunk: Int = 1024
  /// FLOPs of the GEMM-shaped work done so far.
  public var flopCounter: FlopCounter { flops }

  let encoder: VAEEncoder
  let decoder: VAEDecoder
  let quantConv: ConvLayer
  let postQuantConv: ConvLayer
  private let flops: FlopCounter

  /// The key prefix of the autoencoder inside a whole-engine SAT/sgm state dict.
  public static let enginePrefix = "first_stage_model."

  /// The autoencoder's tensors inside `checkpoint`: LDM names as in `sdxl_vae.safetensors`, or the same
  /// under `first_stage_model.` in a whole-engine state dict.
  public static func weights(in checkpoint: any TensorSource) -> any TensorSource {
    checkpoint.keys.contains { $0.hasPrefix(enginePrefix) }
      ? PrefixedTensorSource(checkpoint, stripping: enginePrefix) : checkpoint
  }

  /// Builds the autoencoder and binds its weights (LDM names). Throws `WeightMismatchError` listing every
  /// missing, unexpected and mis-shaped tensor, naming the file.
  public init(
    configuration: AutoencoderConfiguration, weights: any TensorSource, residency: WeightResidency = .widenPerUse,
    name: String = "KL autoencoder"
  ) throws {
    try configuration.validate()
    let binder = WeightBinder(source: weights, residency: residency)
    self.init(configuration, binder)
    try binder.finish(model: name)
  }

  /// Every parameter key and shape the configuration needs.
  public static func expectedShapes(_ configuration: AutoencoderConfiguration) throws -> [String: [Int]] {
    try configuration.validate()
    let binder = WeightBinder(source: nil, residency: .widenPerUse)
    _ = Autoencoder(configuration, binder)
    return binder.expected
  }

  private init(_ c: AutoencoderConfiguration, _ binder: WeightBinder) {
    let s = WeightScope(binder)
    configuration = c
    flops = binder.flops
    encoder = VAEEncoder(s["encoder"], c)
    decoder = VAEDecoder(s["decoder"], c)
    quantConv = ConvLayer(s["quant_conv"], in: 2 * c.zChannels, out: 2 * c.embedDim, kernel: 1, padding: .zero)
    postQuantConv = ConvLayer(s["post_quant_conv"], in: c.embedDim, out: c.zChannels, kernel: 1, padding: .zero)
  }

  /// Throws unless `image` is `[B, in_channels, H, W]` with H and W positive multiples of the downsample factor.
  func checkImage(_ image: Tensor, op: String) throws {
    let f = configuration.downsampleFactor
    guard image.rank == 4, image.shape[1] == configuration.inChannels, image.shape[0] > 0, image.shape[2] > 0,
      image.shape[3] > 0, image.shape[2] % f == 0, image.shape[3] % f == 0
    else {
      throw TensorError.shapeMismatch(
        op: op, shapes: [image.shape],
        detail: "image must be [B, \(configuration.inChannels), H, W] with H and W positive multiples of \(f)")
    }
  }

  /// The posterior of `image` `[B, in_channels, H, W]` (H, W multiples of the downsample factor).
  public func encode(_ image: Tensor, groupNorm: GroupNormFunction = Ops.standardGroupNorm) throws
    -> LatentDistribution
  {
    try checkImage(image, op: "Autoencoder.encode")
    return try posterior(moments: try quantConv(try encoder(image, norm: groupNorm, queryChunk: queryChunk)))
  }

  /// The posterior for quant_conv's output `[B, 2·embed_dim, h, w]` (mean, then log-variance clamped to
  /// [−30, 20]); the last encoder stage returns these moments.
  public func posterior(moments: Tensor) throws -> LatentDistribution {
    guard moments.rank == 4, moments.shape[1] == 2 * configuration.embedDim else {
      throw TensorError.shapeMismatch(
        op: "Autoencoder.posterior", shapes: [moments.shape],
        detail: "moments must be [B, \(2 * configuration.embedDim), h, w]")
    }
    let parts = try Ops.split(moments, axis: 1, sizes: [configuration.embedDim, configuration.embedDim])
    return LatentDistribution(mean: parts[0], logVariance: Ops.clamp(parts[1], -30, 20))
  }

  /// The encoder as stages for tiling: conv_in, one stage per ResnetBlock and per downsample, then the
  /// middle (block_1, attn_1, block_2 — the attention runs over all pixels, so it is global), then
  /// norm_out + swish + conv_out + quant_conv. Run in order, they map an image to the moments
  /// (`posterior(moments:)`). Stages from `encoderMiddleStage` on run at latent resolution.
  public func encoderStages() -> [GroupNormStage] {
    let e = encoder
    var stages: [GroupNormStage] = [{ x, _ in try e.convIn(x) }]
    for level in e.levels {
      for block in level.blocks { stages.append { x, norm in try block(x, norm: norm) } }
      if let down = level.downsample { stages.append { x, _ in try down(x) } }
    }
    stages += e.middle.stages(queryChunk: queryChunk)
    let quant = quantConv
    stages.append { x, norm in try quant(try e.output(x, norm: norm)) }
    return stages
  }

  /// The index of the first middle stage in `encoderStages()`.
  public var encoderMiddleStage: Int {
    1 + encoder.levels.reduce(0) { $0 + $1.blocks.count + ($1.downsample == nil ? 0 : 1) }
  }

  /// The decoder as stages for tiling: post_quant_conv + conv_in; the middle (block_1, attn_1, block_2 —
  /// the attention runs over all latent pixels, so it is global); one stage per ResnetBlock and per
  /// upsampler from the coarsest level; then norm_out + swish + conv_out. Run in order, they equal
  /// `decode`. The first `decoderMiddleEnd` stages run at latent resolution and contain the attention.
  public func decoderStages() -> [GroupNormStage] {
    let d = decoder
    let post = postQuantConv
    var stages: [GroupNormStage] = [{ z, _ in try d.convIn(try post(z)) }]
    stages += d.middle.stages(queryChunk: queryChunk)
    for level in d.levels.reversed() {
      for block in level.blocks { stages.append { x, norm in try block(x, norm: norm) } }
      if let up = level.upsample { stages.append { x, _ in try up(try Ops.upsampleNearest2x(x)) } }
    }
    stages.append { x, norm in try d.tail(x, norm: norm) }
    return stages
  }

  /// The number of leading `decoderStages()` up to and including the middle.
  public var decoderMiddleEnd: Int { 1 + (decoder.middle.attention == nil ? 2 : 3) }

  /// The image `[B, out_channels, 8·h, 8·w]` (unclamped, ≈[−1, 1]) for an unscaled latent `[B, embed_dim, h, w]`.
  public func decode(_ latent: Tensor, groupNorm: GroupNormFunction = Ops.standardGroupNorm) throws -> Tensor {
    guard latent.rank == 4, latent.shape[1] == configuration.embedDim, latent.shape[0] > 0, latent.shape[2] > 0,
      latent.shape[3] > 0
    else {
      throw TensorError.shapeMismatch(
        op: "Autoencoder.decode", shapes: [latent.shape], detail: "latent must be [B, \(configuration.embedDim), h, w]")
    }
    return try decoder(try postQuantConv(latent), norm: groupNorm, queryChunk: queryChunk)
  }

  /// The diffusion model's latent: posterior mean (noise nil) or sample, times `scaleFactor`
  /// (`diffusion.py` `encode_first_stage`).
  public func encodeScaled(
    _ image: Tensor, noise: Tensor? = nil, groupNorm: GroupNormFunction = Ops.standardGroupNorm
  ) throws -> Tensor {
    let posterior = try encode(image, groupNorm: groupNorm)
    let z = try noise.map { try posterior.sample(noise: $0) } ?? posterior.mean
    return Ops.affine(z, scale: configuration.scaleFactor)
  }

  /// The image in [0, 1] for a diffusion latent: z / scaleFactor → decode → clamp((x+1)/2, 0, 1)
  /// (`diffusion.py` `decode_first_stage`, `sample_unet.py` l.194–195).
  public func decodeScaled(_ latent: Tensor, groupNorm: GroupNormFunction = Ops.standardGroupNorm) throws
    -> Tensor
  {
    let x = try decode(Ops.affine(latent, scale: 1 / configuration.scaleFactor), groupNorm: groupNorm)
    return Ops.clamp(Ops.affine(x, scale: 0.5, shift: 0.5), 0, 1)
  }
}
