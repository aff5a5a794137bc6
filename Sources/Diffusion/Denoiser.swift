import Foundation
import Tensor

/// An x0-predictor D(x, σ) in VE space: what every sampler here consumes. `x` is `[B, C, H, W]` and σ is
/// shared by the whole batch.
public typealias Denoiser = (_ x: Tensor, _ sigma: Float) throws -> Tensor

/// sgm `DiscreteDenoiser` with `EpsScaling` (official §5.2; THUDM/CogView3 `sat/sgm/modules/diffusionmodules/
/// denoiser.py`, `denoiser_scaling.py`): σ snapped to the table, c_skip = 1, c_out = −σ, c_in = 1/√(σ²+1),
/// c_noise = the table index, D(x, σ) = x − σ·ε(x·c_in, t, ·).
public struct EpsDenoiser {
  public let schedule: LegacyDDPMSchedule
  public let model: EpsilonModel

  public init(schedule: LegacyDDPMSchedule = .cogView3, model: @escaping EpsilonModel) {
    self.schedule = schedule
    self.model = model
  }

  /// D(x, σ) for a batch `x` `[B, ...]` with one conditioning per item.
  public func denoise(
    _ x: Tensor, sigma: Float, conditioning: Conditioning, guidanceEmbedding: Tensor? = nil
  ) throws -> Tensor {
    let op = "EpsDenoiser"
    try check(x.rank >= 1 && x.shape[0] >= 1, op, "input must be [B, ...], got \(x.shape)")
    let batch = x.shape[0]
    if let b = conditioning.batch { try check(b == batch, op, "conditioning batch \(b) ≠ input batch \(batch)") }
    if let g = guidanceEmbedding {
      try check(g.rank == 2 && g.shape[0] == batch, op, "guidance embedding must be [\(batch), w_dim], got \(g.shape)")
    }
    let t = schedule.index(of: sigma)
    let s = schedule.sigmas[t]  // possibly_quantize_sigma
    let cIn = 1 / (s * s + 1).squareRoot()
    let input = ModelInput(
      x: Ops.affine(x, scale: cIn), timesteps: Array(repeating: t, count: batch), conditioning: conditioning,
      guidanceEmbedding: guidanceEmbedding)
    let eps = try model(input)
    try checkShapes(eps.shape, x.shape, op, "the model must return ε with the input's shape")
    // network·c_out + input·c_skip with c_out = −σ, c_skip = 1, in that order as sgm computes it.
    var out = eps
    x.withUnsafeBufferPointer { px in
      out.withUnsafeMutableBufferPointer { po in
        for i in 0..<po.count { po[i] = po[i] * -s + px[i] }
      }
    }
    return out
  }
}

/// How the two conditioning branches are combined into one x0 prediction.
public enum Guidance: Sendable {
  /// sgm `IdentityGuider`: the conditional branch only, one pass. Distilled models pass their guidance
  /// embedding here (official §7); nil otherwise.
  case none(guidanceEmbedding: Tensor? = nil)
  /// sgm `VanillaCFG` (official §5.4): the batch is `[uncond, cond]` (uncond first) in one model call of
  /// batch 2B, and D = D_u + scale·(D_c − D_u) on the x0 prediction.
  case classifierFree(scale: Float, unconditional: Conditioning)

  /// The distilled models' guidance: no CFG, the embedding of w (w·1000, sin first, denominator half−1;
  /// Tensor's `Embeddings.guidance`) for `batch` items, `[B, dim]` (official §7: w = 7.5, dim 512 base, 256 relay).
  public static func distilled(scale: Float = 7.5, embeddingDim: Int, batch: Int = 1) -> Guidance {
    .none(guidanceEmbedding: Embeddings.guidance(Array(repeating: scale, count: batch), dim: embeddingDim))
  }
}

extension EpsDenoiser {
  /// The guided x0 predictor a sampler runs on, for the conditioning `conditioning` (batch B).
  public func guided(_ conditioning: Conditioning, guidance: Guidance) -> Denoiser {
    switch guidance {
    case .none(let embedding):
      return { x, sigma in
        try self.denoise(x, sigma: sigma, conditioning: conditioning, guidanceEmbedding: embedding)
      }
    case .classifierFree(let scale, let uncond):
      return { x, sigma in
        let batch = x.shape.first ?? 0
        let both = try self.denoise(
          Ops.concat([x, x], axis: 0), sigma: sigma, conditioning: Conditioning.batched([uncond, conditioning]))
        let halves = try Ops.split(both, axis: 0, sizes: [batch, batch])
        return cfgCombine(uncond: halves[0], cond: halves[1], scale: scale)
      }
    }
  }
}

/// sgm `NoDynamicThresholding`: u + scale·(c − u), elementwise in float32.
func cfgCombine(uncond: Tensor, cond: Tensor, scale: Float) -> Tensor {
  var out = uncond
  cond.withUnsafeBufferPointer { pc in
    out.withUnsafeMutableBufferPointer { po in
      for i in 0..<po.count { po[i] = po[i] + scale * (pc[i] - po[i]) }
    }
  }
  return out
}
