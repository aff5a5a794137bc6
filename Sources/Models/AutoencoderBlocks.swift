import Foundation
import Tensor

/// LDM `ResnetBlock` without time embedding: norm1 → swish → conv1 → norm2 → swish → conv2, plus
/// `nin_shortcut` (1×1) when the channel count changes. GroupNorm eps 1e-6.
/// Source: THUDM/CogView3 sat/sgm/modules/diffusionmodules/model.py `ResnetBlock.forward`.
struct VAEResnetBlock {
  let norm1: GroupNormLayer, conv1: ConvLayer, norm2: GroupNormLayer, conv2: ConvLayer
  let shortcut: ConvLayer?

  init(_ s: WeightScope, in inChannels: Int, out outChannels: Int, groups: Int) {
    norm1 = GroupNormLayer(s["norm1"], channels: inChannels, groups: groups, eps: 1e-6)
    conv1 = ConvLayer(s["conv1"], in: inChannels, out: outChannels, kernel: 3, padding: .uniform(1))
    norm2 = GroupNormLayer(s["norm2"], channels: outChannels, groups: groups, eps: 1e-6)
    conv2 = ConvLayer(s["conv2"], in: outChannels, out: outChannels, kernel: 3, padding: .uniform(1))
    shortcut =
      inChannels == outChannels
      ? nil : ConvLayer(s["nin_shortcut"], in: inChannels, out: outChannels, kernel: 1, padding: .zero)
  }

  func callAsFunction(_ x: Tensor, norm: GroupNormFunction) throws -> Tensor {
    var h = try norm1(x, using: norm)
    LayerKernels.siluInPlace(&h)
    h = try conv1(h)
    h = try norm2(h, using: norm)
    LayerKernels.siluInPlace(&h)
    h = try conv2(h)
    try LayerKernels.addInPlace(&h, try shortcut.map { try $0(x) } ?? x, op: "VAE ResnetBlock")
    return h
  }
}

/// LDM `AttnBlock`: single-head self-attention over the H·W pixels with 1×1-conv q/k/v/proj_out
/// (applied as linear maps on `[B, H·W, C]`), scale C^−½, computed in query chunks.
/// Source: THUDM/CogView3 sat/sgm/modules/diffusionmodules/model.py `AttnBlock`.
struct VAEAttention {
  let norm: GroupNormLayer
  let q: ConvLayer, k: ConvLayer, v: ConvLayer, projOut: ConvLayer
  let channels: Int
  let flops: FlopCounter

  init(_ s: WeightScope, channels: Int, groups: Int) {
    norm = GroupNormLayer(s["norm"], channels: channels, groups: groups, eps: 1e-6)
    q = ConvLayer(s["q"], in: channels, out: channels, kernel: 1, padding: .zero)
    k = ConvLayer(s["k"], in: channels, out: channels, kernel: 1, padding: .zero)
    v = ConvLayer(s["v"], in: channels, out: channels, kernel: 1, padding: .zero)
    projOut = ConvLayer(s["proj_out"], in: channels, out: channels, kernel: 1, padding: .zero)
    self.channels = channels
    flops = s.flops
  }

  /// A 1×1 conv as a linear map on tokens `[B, N, C]`.
  private func pointwise(_ conv: ConvLayer, _ x: Tensor) throws -> Tensor {
    flops.add(2 * Double(x.count) * Double(channels))
    let w = try conv.weight.value()
    defer { conv.weight.recycle(w) }
    return try Ops.linear(x, weight: w.reshaped([channels, channels]), bias: conv.bias.value())
  }

  func callAsFunction(_ x: Tensor, norm groupNorm: GroupNormFunction, queryChunk: Int) throws -> Tensor {
    let (b, h, w) = (x.shape[0], x.shape[2], x.shape[3])
    let tokens = try LayerKernels.imageToTokens(try norm(x, using: groupNorm))
    let qt = try pointwise(q, tokens)
    let kt = try pointwise(k, tokens)
    let vt = try pointwise(v, tokens)
    flops.add(4 * Double(b) * Double(h * w) * Double(h * w) * Double(channels))
    let a = try Ops.attention(q: qt, k: kt, v: vt, heads: 1, queryChunk: queryChunk)
    var out = try LayerKernels.tokensToImage(try pointwise(projOut, a), height: h, width: w)
    try LayerKernels.addInPlace(&out, x, op: "VAE attention")
    return out
  }
}

/// The middle of encoder and decoder: block_1, attn_1 (when configured), block_2.
struct VAEMiddle {
  let block1: VAEResnetBlock, block2: VAEResnetBlock
  let attention: VAEAttention?

  init(_ s: WeightScope, channels: Int, groups: Int, attention: Bool) {
    block1 = VAEResnetBlock(s["block_1"], in: channels, out: channels, groups: groups)
    self.attention = attention ? VAEAttention(s["attn_1"], channels: channels, groups: groups) : nil
    block2 = VAEResnetBlock(s["block_2"], in: channels, out: channels, groups: groups)
  }

  func callAsFunction(_ x: Tensor, norm: GroupNormFunction, queryChunk: Int) throws -> Tensor {
    var h = try block1(x, norm: norm)
    if let attention { h = try attention(h, norm: norm, queryChunk: queryChunk) }
    return try block2(h, norm: norm)
  }

  /// block_1, attn_1 (when configured), block_2 as separate stages, so that a tiled run keeps the
  /// attention's output and runs it once per tile.
  func stages(queryChunk: Int) -> [GroupNormStage] {
    let (b1, b2) = (block1, block2)
    var stages: [GroupNormStage] = [{ x, norm in try b1(x, norm: norm) }]
    if let attention { stages.append { x, norm in try attention(x, norm: norm, queryChunk: queryChunk) } }
    stages.append { x, norm in try b2(x, norm: norm) }
    return stages
  }
}

/// LDM `Encoder`: conv_in → per level `num_res_blocks` ResnetBlocks and (but the last level) a
/// downsample that pads right/bottom by one and convolves 3×3 stride 2 without padding → middle →
/// norm_out → swish → conv_out (2·z_channels: mean and log-variance).
/// Source: THUDM/CogView3 sat/sgm/modules/diffusionmodules/model.py `Encoder`, `Downsample`.
struct VAEEncoder {
  let convIn: ConvLayer
  let levels: [(blocks: [VAEResnetBlock], downsample: ConvLayer?)]
  let middle: VAEMiddle
  let normOut: GroupNormLayer
  let convOut: ConvLayer

  init(_ s: WeightScope, _ c: AutoencoderConfiguration) {
    convIn = ConvLayer(s["conv_in"], in: c.inChannels, out: c.channels, kernel: 3, padding: .uniform(1))
    var levels: [(blocks: [VAEResnetBlock], downsample: ConvLayer?)] = []
    var blockIn = c.channels
    for (i, mult) in c.channelMult.enumerated() {
      let level = s["down"][i]
      let blockOut = c.channels * mult
      var blocks: [VAEResnetBlock] = []
      for j in 0..<c.numResBlocks {
        blocks.append(VAEResnetBlock(level["block"][j], in: blockIn, out: blockOut, groups: c.groups))
        blockIn = blockOut
      }
      let down =
        i == c.channelMult.count - 1
        ? nil
        : ConvLayer(level["downsample.conv"], in: blockIn, out: blockIn, kernel: 3, stride: 2, padding: .vaeDownsample)
      levels.append((blocks, down))
    }
    self.levels = levels
    middle = VAEMiddle(s["mid"], channels: blockIn, groups: c.groups, attention: c.midAttention)
    normOut = GroupNormLayer(s["norm_out"], channels: blockIn, groups: c.groups, eps: 1e-6)
    convOut = ConvLayer(s["conv_out"], in: blockIn, out: 2 * c.zChannels, kernel: 3, padding: .uniform(1))
  }

  func callAsFunction(_ x: Tensor, norm: GroupNormFunction, queryChunk: Int) throws -> Tensor {
    var h = try convIn(x)
    for level in levels {
      for block in level.blocks { h = try block(h, norm: norm) }
      if let down = level.downsample { h = try down(h) }
    }
    return try tail(h, norm: norm, queryChunk: queryChunk)
  }

  /// middle → norm_out → swish → conv_out.
  func tail(_ x: Tensor, norm: GroupNormFunction, queryChunk: Int) throws -> Tensor {
    try output(try middle(x, norm: norm, queryChunk: queryChunk), norm: norm)
  }

  /// norm_out → swish → conv_out.
  func output(_ x: Tensor, norm: GroupNormFunction) throws -> Tensor {
    var h = try normOut(x, using: norm)
    LayerKernels.siluInPlace(&h)
    return try convOut(h)
  }
}

/// LDM `Decoder`: conv_in → middle → levels from the coarsest (`up.{L−1}`) to `up.0`, each with
/// `num_res_blocks + 1` ResnetBlocks and (but level 0) nearest ×2 + conv 3×3 → norm_out → swish → conv_out.
/// Source: THUDM/CogView3 sat/sgm/modules/diffusionmodules/model.py `Decoder`, `Upsample`.
struct VAEDecoder {
  let convIn: ConvLayer
  let middle: VAEMiddle
  /// Indexed by level as the keys are (`up.0` = full resolution); run from the last to the first.
  let levels: [(blocks: [VAEResnetBlock], upsample: ConvLayer?)]
  let normOut: GroupNormLayer
  let convOut: ConvLayer

  init(_ s: WeightScope, _ c: AutoencoderConfiguration) {
    var blockIn = c.channels * (c.channelMult.last ?? 1)
    convIn = ConvLayer(s["conv_in"], in: c.zChannels, out: blockIn, kernel: 3, padding: .uniform(1))
    middle = VAEMiddle(s["mid"], channels: blockIn, groups: c.groups, attention: c.midAttention)
    var levels = [(blocks: [VAEResnetBlock], upsample: ConvLayer?)]()
    for i in (0..<c.channelMult.count).reversed() {
      let level = s["up"][i]
      let blockOut = c.channels * c.channelMult[i]
      var blocks: [VAEResnetBlock] = []
      for j in 0...c.numResBlocks {
        blocks.append(VAEResnetBlock(level["block"][j], in: blockIn, out: blockOut, groups: c.groups))
        blockIn = blockOut
      }
      let up =
        i == 0 ? nil : ConvLayer(level["upsample.conv"], in: blockIn, out: blockIn, kernel: 3, padding: .uniform(1))
      levels.insert((blocks, up), at: 0)
    }
    self.levels = levels
    normOut = GroupNormLayer(s["norm_out"], channels: blockIn, groups: c.groups, eps: 1e-6)
    convOut = ConvLayer(s["conv_out"], in: blockIn, out: c.outChannels, kernel: 3, padding: .uniform(1))
  }

  func callAsFunction(_ z: Tensor, norm: GroupNormFunction, queryChunk: Int) throws -> Tensor {
    var h = try convIn(z)
    h = try middle(h, norm: norm, queryChunk: queryChunk)
    for level in levels.reversed() {
      for block in level.blocks { h = try block(h, norm: norm) }
      if let up = level.upsample { h = try up(try Ops.upsampleNearest2x(h)) }
    }
    return try tail(h, norm: norm)
  }

  /// norm_out → swish → conv_out.
  func tail(_ x: Tensor, norm: GroupNormFunction) throws -> Tensor {
    var h = try normOut(x, using: norm)
    LayerKernels.siluInPlace(&h)
    return try convOut(h)
  }
}
