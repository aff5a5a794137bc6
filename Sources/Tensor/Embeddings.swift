import Foundation

/// The two sinusoidal embeddings of CogView3 (reference/cogview3-official.md §11.3), computed in
/// float32 as PyTorch does: frequencies exp(−ln(10⁴)·i/denominator), arguments t·f rounded to float32.
public enum Embeddings {
  /// `timestep_embedding(t, dim)` of sgm `diffusionmodules/util.py`: [cos(t·f), sin(t·f)], cos first,
  /// f_i = exp(−ln(10⁴)·i/half). Used for the UNet timestep (dim 320) and the size/crop scalars (256).
  /// Returns `[N, dim]`; an odd `dim` gets a trailing zero column as in the reference.
  public static func timestep(_ t: [Float], dim: Int) -> Tensor {
    let half = dim / 2
    let freqs = (0..<half).map { Float(exp(-log(Float(10000)) * Float($0) / Float(half))) }
    var out = Tensor(zeros: [t.count, dim])
    for (n, tv) in t.enumerated() {
      for i in 0..<half {
        let arg = tv * freqs[i]
        out.data[n * dim + i] = cos(arg)
        out.data[n * dim + half + i] = sin(arg)
      }
    }
    return out
  }

  /// `guidance_scale_embedding(w, dim)` of the distilled models (official §7): the input is w·1000,
  /// f_i = exp(−ln(10⁴)·i/(half−1)), output [sin, cos], sin first. Returns `[N, dim]`.
  public static func guidance(_ w: [Float], dim: Int) -> Tensor {
    let half = dim / 2
    let denom = Float(max(half - 1, 1))
    let freqs = (0..<half).map { Float(exp(-log(Float(10000)) * Float($0) / denom)) }
    var out = Tensor(zeros: [w.count, dim])
    for (n, wv) in w.enumerated() {
      let x = wv * 1000
      for i in 0..<half {
        let arg = x * freqs[i]
        out.data[n * dim + i] = sin(arg)
        out.data[n * dim + half + i] = cos(arg)
      }
    }
    return out
  }
}
