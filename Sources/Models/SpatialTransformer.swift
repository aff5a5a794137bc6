import Tensor

/// Multi-head attention with bias-free q/k/v and a biased output projection (`to_q`, `to_k`, `to_v`,
/// `to_out.0`); score scale 1/√(head width); no mask. Computed in query chunks by `Ops.attention`.
/// Source: THUDM/CogView3 sat/sgm/modules/attention.py `CrossAttention` / `MemoryEfficientCrossAttention`.
struct UNetAttention {
  let toQ: DenseLayer, toK: DenseLayer, toV: DenseLayer, toOut: DenseLayer
  let heads: Int
  let flops: FlopCounter

  init(_ s: WeightScope, channels: Int, contextChannels: Int, heads: Int) {
    toQ = DenseLayer(s["to_q"], in: channels, out: channels, bias: false)
    toK = DenseLayer(s["to_k"], in: contextChannels, out: channels, bias: false)
    toV = DenseLayer(s["to_v"], in: contextChannels, out: channels, bias: false)
    toOut = DenseLayer(s["to_out.0"], in: channels, out: channels)
    self.heads = heads
    flops = s.flops
  }

  /// `x` `[B, N, C]`, `context` `[B, T, Cctx]` (or `x` itself for self-attention) → `[B, N, C]`.
  func callAsFunction(_ x: Tensor, context: Tensor, queryChunk: Int) throws -> Tensor {
    let q = try toQ(x)
    let k = try toK(context)
    let v = try toV(context)
    let (b, n, c) = (x.shape[0], x.shape[1], x.shape[2])
    flops.add(4 * Double(b * n * context.shape[1] * c))
    let a = try Ops.attention(q: q, k: k, v: v, heads: heads, queryChunk: queryChunk)
    return try toOut(a)
  }
}

/// `BasicTransformerBlock`: x += attn1(LN1(x)); x += attn2(LN2(x), context); x += FF(LN3(x)), with
/// LayerNorm eps 1e-5 and a GEGLU feed-forward (value = first half, gate = second half, exact GELU).
/// Source: THUDM/CogView3 sat/sgm/modules/attention.py `BasicTransformerBlock._forward`, `GEGLU`.
struct UNetTransformerBlock {
  let norm1: LayerNormLayer, norm2: LayerNormLayer, norm3: LayerNormLayer
  let attn1: UNetAttention, attn2: UNetAttention
  let ffIn: DenseLayer, ffOut: DenseLayer

  init(_ s: WeightScope, channels: Int, contextChannels: Int, heads: Int) {
    norm1 = LayerNormLayer(s["norm1"], channels: channels, eps: 1e-5)
    norm2 = LayerNormLayer(s["norm2"], channels: channels, eps: 1e-5)
    norm3 = LayerNormLayer(s["norm3"], channels: channels, eps: 1e-5)
    attn1 = UNetAttention(s["attn1"], channels: channels, contextChannels: channels, heads: heads)
    attn2 = UNetAttention(s["attn2"], channels: channels, contextChannels: contextChannels, heads: heads)
    ffIn = DenseLayer(s["ff.net.0.proj"], in: channels, out: 8 * channels)
    ffOut = DenseLayer(s["ff.net.2"], in: 4 * channels, out: channels)
  }

  func callAsFunction(_ x: Tensor, context: Tensor, queryChunk: Int) throws -> Tensor {
    var x = x
    let h1 = try norm1(x)
    try LayerKernels.addInPlace(&x, try attn1(h1, context: h1, queryChunk: queryChunk), op: "attn1")
    try LayerKernels.addInPlace(&x, try attn2(try norm2(x), context: context, queryChunk: queryChunk), op: "attn2")
    let ff = try ffOut(try Ops.geglu(try ffIn(try norm3(x))))
    try LayerKernels.addInPlace(&x, ff, op: "ff")
    return x
  }
}

/// `SpatialTransformer` with linear proj_in/proj_out (use_linear_in_transformer True): GroupNorm(32, eps 1e-6)
/// → tokens `[B, H·W, C]` → proj_in → `depth` transformer blocks → proj_out → image + input.
/// Keys `norm`, `proj_in`, `transformer_blocks.{j}`, `proj_out`.
/// Source: THUDM/CogView3 sat/sgm/modules/attention.py `SpatialTransformer.forward`.
struct SpatialTransformer {
  let norm: GroupNormLayer
  let projIn: DenseLayer, projOut: DenseLayer
  let blocks: [UNetTransformerBlock]

  init(_ s: WeightScope, channels: Int, contextChannels: Int, heads: Int, depth: Int, groups: Int) {
    norm = GroupNormLayer(s["norm"], channels: channels, groups: groups, eps: 1e-6)
    projIn = DenseLayer(s["proj_in"], in: channels, out: channels)
    blocks = (0..<depth).map {
      UNetTransformerBlock(
        s["transformer_blocks"][$0], channels: channels, contextChannels: contextChannels, heads: heads)
    }
    projOut = DenseLayer(s["proj_out"], in: channels, out: channels)
  }

  /// `x` `[B, C, H, W]`, `context` `[B, T, Cctx]` → `[B, C, H, W]`.
  func callAsFunction(_ x: Tensor, context: Tensor, queryChunk: Int) throws -> Tensor {
    let (h, w) = (x.shape[2], x.shape[3])
    var t = try projIn(try LayerKernels.imageToTokens(try norm(x)))
    for block in blocks { t = try block(t, context: context, queryChunk: queryChunk) }
    var out = try LayerKernels.tokensToImage(try projOut(t), height: h, width: w)
    try LayerKernels.addInPlace(&out, x, op: "SpatialTransformer")
    return out
  }
}
