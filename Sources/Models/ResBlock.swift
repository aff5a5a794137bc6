import Tensor

/// The UNet residual block (use_scale_shift_norm False): h = conv(SiLU(GN(x))); h += Linear(SiLU(emb));
/// h = conv(SiLU(GN(h))); out = skip(x) + h. Keys `in_layers.{0,2}`, `emb_layers.1`, `out_layers.{0,3}`,
/// `skip_connection` (1×1 conv, only when the channel count changes). GroupNorm32 with eps 1e-5.
/// Source: THUDM/CogView3 sat/sgm/modules/diffusionmodules/openaimodel.py `ResBlock._forward`.
struct UNetResBlock {
  let inNorm: GroupNormLayer
  let inConv: ConvLayer
  let embLinear: DenseLayer
  let outNorm: GroupNormLayer
  let outConv: ConvLayer
  let skip: ConvLayer?

  init(_ s: WeightScope, in inChannels: Int, out outChannels: Int, embedding: Int, groups: Int) {
    inNorm = GroupNormLayer(s["in_layers.0"], channels: inChannels, groups: groups, eps: 1e-5)
    inConv = ConvLayer(s["in_layers.2"], in: inChannels, out: outChannels, kernel: 3, padding: .uniform(1))
    embLinear = DenseLayer(s["emb_layers.1"], in: embedding, out: outChannels)
    outNorm = GroupNormLayer(s["out_layers.0"], channels: outChannels, groups: groups, eps: 1e-5)
    outConv = ConvLayer(s["out_layers.3"], in: outChannels, out: outChannels, kernel: 3, padding: .uniform(1))
    skip =
      inChannels == outChannels
      ? nil : ConvLayer(s["skip_connection"], in: inChannels, out: outChannels, kernel: 1, padding: .zero)
  }

  /// `x` `[B, Cin, H, W]`, `embSiLU` = SiLU(emb) `[B, 1280]` (shared by every block) → `[B, Cout, H, W]`.
  func callAsFunction(_ x: Tensor, embSiLU: Tensor) throws -> Tensor {
    var h = try inNorm(x)
    LayerKernels.siluInPlace(&h)
    h = try inConv(h)
    try LayerKernels.addChannelVector(&h, try embLinear(embSiLU), op: "UNet ResBlock")
    h = try outNorm(h)
    LayerKernels.siluInPlace(&h)
    h = try outConv(h)
    if let skip {
      try LayerKernels.addInPlace(&h, try skip(x), op: "UNet ResBlock")
    } else {
      try LayerKernels.addInPlace(&h, x, op: "UNet ResBlock")
    }
    return h
  }
}
