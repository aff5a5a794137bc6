import Foundation

/// The two sinusoidal embeddings of CogView3 (reference/cogview3-official.md §2.2, §7, §11.3), computed
/// in float32 in the reference's operation order so that the rounding of the frequencies matches
/// PyTorch (arguments reach 7500 rad, where one ulp of a frequency moves sin/cos by ~5e-4).
public enum Embeddings {
  /// `timestep_embedding(t, dim)` of sgm `diffusionmodules/util.py`: [cos(t·f), sin(t·f)], cos first,
  /// f_i = exp(−ln(10⁴)·i/half). Used for the UNet timestep (dim 320) and the size/crop scalars (256).
  /// Returns `[N, dim]`; an odd `dim` gets a trailing zero column as in the reference.
  public static func timestep(_ t: [Float], dim: Int) -> Tensor {
    let half = max(dim, 0) / 2
    // (−ln 10⁴ · i) / half in float32, then exp (rounded once from double).
    let freqs = (0..<half).map { i -> Float in
      let a = -Float(log(10000.0)) * Float(i) / Float(half)
      return Float(Foundation.exp(Double(a)))
    }
    var out = Tensor(zeros: [t.count, max(dim, 0)])
    for (n, tv) in t.enumerated() {
      for i in 0..<half {
        let arg = tv * freqs[i]
        out.data[n * dim + i] = Foundation.cos(arg)
        out.data[n * dim + half + i] = Foundation.sin(arg)
      }
    }
    return out
  }

  /// `guidance_scale_embedding(w, dim)` of the distilled models (official §7, sgm `sampling.py`): the
  /// input is w·1000, f_i = exp(i·(−ln 10⁴/(half−1))), output [sin, cos], sin first. Returns `[N, dim]`;
  /// an odd `dim` gets a trailing zero column.
  public static func guidance(_ w: [Float], dim: Int) -> Tensor {
    let half = max(dim, 0) / 2
    // c = ln(10⁴)/(half − 1) in float32, then exp(i·(−c)) as the reference computes it.
    let c = Float(log(10000.0)) / Float(max(half - 1, 1))
    let freqs = (0..<half).map { Float(Foundation.exp(Double(Float($0) * -c))) }
    var out = Tensor(zeros: [w.count, max(dim, 0)])
    for (n, wv) in w.enumerated() {
      let x = wv * 1000
      for i in 0..<half {
        let arg = x * freqs[i]
        out.data[n * dim + i] = Foundation.sin(arg)
        out.data[n * dim + half + i] = Foundation.cos(arg)
      }
    }
    return out
  }
}
