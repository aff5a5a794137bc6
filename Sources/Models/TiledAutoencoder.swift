import Foundation
import Tensor

/// Tiled encode and decode of the KL autoencoder with exact GroupNorm statistics (issue 5 item 7).
///
/// The autoencoder's stages (`Autoencoder.encoderStages()`/`decoderStages()`) route every GroupNorm through
/// the hook they are handed; a `TiledStageRunner` (Diffusion's `TiledGroupNormRunner.stageRunner`, passed
/// in so Models does not import Diffusion) runs them tile by tile and normalizes every tile with the
/// statistics of the whole image. Every convolution sees its true neighbourhood through the halo, so what
/// remains is the single-head attention in the middle of encoder and decoder, which mixes all latent
/// pixels and so cannot be split into tiles exactly. Two choices:
///
/// - `.global`: exact. The decoder's head (post_quant_conv, conv_in, middle) runs untiled on the whole latent,
///   the rest tiled; the encoder runs tiled up to the middle and the middle and output untiled. Tiled ==
///   untiled up to float32 rounding. The untiled part holds a few `[B, 512, h, w]` latent-resolution
///   tensors (512 MB each at a 4096² image) and the attention costs 4·(h·w)²·512 FLOPs: 0.55 TFLOP at
///   1024² (fine), 8.8 TFLOP at 2048², 140 TFLOP at 4096² (hours on a few CPU cores).
/// - `.perTile` (the default): the attention runs inside each tile's region (core + halo), as the tiled
///   VAEs people use for very large images do (pkuliyi2015's multidiffusion-upscaler "Tiled VAE" runs the
///   attention per tile while syncing GroupNorm; diffusers' and ComfyUI's tiled decoders run whole tiles
///   independently). Everything else stays exact: GroupNorm statistics pooled over the whole image, halo
///   for every convolution. The deviation is measured in TiledAutoencoderTests and the bench (`--tile`).
///   Memory and time are then bounded by the tile size at any image size.
public struct TiledAutoencoder: Sendable {
  public enum Attention: String, Sendable, CaseIterable {
    case global
    case perTile = "per-tile"
  }

  public let autoencoder: Autoencoder
  public var attention: Attention

  public init(_ autoencoder: Autoencoder, attention: Attention = .perTile) {
    self.autoencoder = autoencoder
    self.attention = attention
  }

  /// Whether the middle carries the (global) attention; without it both modes are exact.
  var hasAttention: Bool { autoencoder.configuration.midAttention }

  /// Latent pixels of halo the tiled decoder stages need: the receptive radius of their 3×3 convolutions,
  /// each contributing ⌈convs/scale⌉ latent pixels at scale × the latent resolution (a nearest ×2 upsample
  /// moves its conv to the finer scale). Includes conv_in and the middle when they run tiled.
  public var decoderHalo: Int {
    let c = autoencoder.configuration
    let levels = c.channelMult.count
    var convsAtScale: [(convs: Int, scale: Int)] = []
    if attention == .perTile || !hasAttention { convsAtScale.append((1 + 4, 1)) }
    for level in (0..<levels).reversed() {
      let scale = 1 << (levels - 1 - level)
      var convs = 2 * (c.numResBlocks + 1)
      if level < levels - 1 { convs += 1 }  // the upsample conv of the coarser level runs at this scale
      if level == 0 { convs += 1 }  // conv_out
      convsAtScale.append((convs, scale))
    }
    return convsAtScale.reduce(0) { $0 + ($1.convs + $1.scale - 1) / $1.scale }
  }

  /// Image pixels of halo the tiled encoder stages need: a 3×3 conv at level i reaches 2^i image pixels,
  /// the stride-2 downsample (pad right/bottom) is counted as two convs. Includes the middle and output
  /// when they run tiled.
  public var encoderHalo: Int {
    let c = autoencoder.configuration
    let levels = c.channelMult.count
    var radius = 1  // conv_in
    for level in 0..<levels {
      let scale = 1 << level
      radius += 2 * c.numResBlocks * scale
      if level < levels - 1 { radius += 2 * scale }
    }
    if attention == .perTile || !hasAttention { radius += 5 * (1 << (levels - 1)) }  // middle + conv_out
    return radius
  }

  /// The image for an unscaled latent `[B, embed_dim, h, w]`, as `Autoencoder.decode`, decoded in tiles.
  /// `halo` defaults to `decoderHalo`; a larger one gives per-tile attention more context.
  public func decode(_ latent: Tensor, runner: TiledStageRunner, halo: Int? = nil) throws -> Tensor {
    let a = autoencoder
    let c = a.configuration
    guard latent.rank == 4, latent.shape[1] == c.embedDim, latent.shape[0] > 0, latent.shape[2] > 0,
      latent.shape[3] > 0
    else {
      throw TensorError.shapeMismatch(
        op: "TiledAutoencoder.decode", shapes: [latent.shape], detail: "latent must be [B, \(c.embedDim), h, w]")
    }
    try checkHalo(halo, op: "TiledAutoencoder.decode")
    let stages = a.decoderStages()
    if attention == .global && hasAttention {
      let head = a.decoderMiddleEnd
      let h = try stages[..<head].reduce(latent) { try $1($0, Ops.standardGroupNorm) }
      return try runner(Array(stages[head...]), h, halo ?? decoderHalo, 1)
    }
    return try runner(stages, latent, halo ?? decoderHalo, 1)
  }

  /// The posterior of `image` `[B, in_channels, H, W]`, as `Autoencoder.encode`, encoded in tiles (tile and
  /// halo in image pixels; tile boundaries fall on multiples of the downsample factor).
  public func encode(_ image: Tensor, runner: TiledStageRunner, halo: Int? = nil) throws -> LatentDistribution {
    let a = autoencoder
    let c = a.configuration
    let f = c.downsampleFactor
    guard image.rank == 4, image.shape[1] == c.inChannels, image.shape[0] > 0, image.shape[2] > 0,
      image.shape[3] > 0, image.shape[2] % f == 0, image.shape[3] % f == 0
    else {
      throw TensorError.shapeMismatch(
        op: "TiledAutoencoder.encode", shapes: [image.shape],
        detail: "image must be [B, \(c.inChannels), H, W] with H and W positive multiples of \(f)")
    }
    try checkHalo(halo, op: "TiledAutoencoder.encode")
    let stages = a.encoderStages()
    if attention == .global && hasAttention {
      let middle = a.encoderMiddleStage
      let h = try runner(Array(stages[..<middle]), image, halo ?? encoderHalo, f)
      return try a.posterior(moments: try stages[middle...].reduce(h) { try $1($0, Ops.standardGroupNorm) })
    }
    return try a.posterior(moments: try runner(stages, image, halo ?? encoderHalo, f))
  }

  private func checkHalo(_ halo: Int?, op: String) throws {
    if let halo, halo < 0 { throw TensorError.invalidArgument(op: op, detail: "halo must be ≥ 0, got \(halo)") }
  }
}
