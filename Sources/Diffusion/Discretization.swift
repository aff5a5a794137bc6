import Foundation
import Tensor

/// The SD/SDXL "LegacyDDPM" noise schedule in σ form (VE parameterization), as CogView3's base and relay
/// models use it: β linear in √β from 0.00085 to 0.012 over 1000 steps, ᾱ = Π(1−β), σ_t = √((1−ᾱ_t)/ᾱ_t).
///
/// Port of sgm `LegacyDDPMDiscretization` (THUDM/CogView3 `sat/sgm/modules/diffusionmodules/discretizer.py`,
/// `util.py make_beta_schedule`), reference/cogview3-official.md §5.1. The precision steps follow the
/// reference: the linspace, squares, cumulative product and ratio in float64, then the ratio rounded to
/// float32 and its square root taken in float32. The linspace is computed the way `torch.linspace` does
/// (from the start for the first half, from the end for the second) so that the betas match bit for bit.
/// Not modelled: the zero-terminal-SNR variant used by CogView3-Plus.
public struct LegacyDDPMSchedule: Sendable, Hashable {
  /// σ for every DDPM timestep t = 0…count−1, ascending (index = t, the UNet's timestep input).
  public let sigmas: [Float]
  /// ᾱ_t in float64, index = t.
  public let alphasCumprod: [Double]

  /// The CogView3 base/relay schedule (official §5.1).
  public static let cogView3 = LegacyDDPMSchedule(validated: 0.00085, 0.012, 1000)

  public init(linearStart: Double = 0.00085, linearEnd: Double = 0.012, timesteps: Int = 1000) throws {
    try check(timesteps >= 2, "LegacyDDPMSchedule", "needs at least 2 timesteps, got \(timesteps)")
    try check(
      linearStart > 0 && linearEnd > 0 && linearEnd < 1, "LegacyDDPMSchedule",
      "β range \(linearStart)…\(linearEnd) must lie in (0, 1)")
    self.init(validated: linearStart, linearEnd, timesteps)
  }

  private init(validated linearStart: Double, _ linearEnd: Double, _ timesteps: Int) {
    let roots = Self.torchLinspace(linearStart.squareRoot(), linearEnd.squareRoot(), count: timesteps)
    var acc = 1.0
    var alphas = [Double]()
    alphas.reserveCapacity(timesteps)
    for r in roots {
      acc *= 1 - r * r
      alphas.append(acc)
    }
    alphasCumprod = alphas
    sigmas = alphas.map { Float((1 - $0) / $0).squareRoot() }
  }

  /// Number of DDPM timesteps (1000).
  public var count: Int { sigmas.count }

  /// σ at DDPM timestep `t`.
  public func sigma(at t: Int) throws -> Float {
    try check(t >= 0 && t < count, "LegacyDDPMSchedule.sigma", "timestep \(t) outside 0..<\(count)")
    return sigmas[t]
  }

  /// The table index nearest to σ (first index on a tie), i.e. sgm `DiscreteDenoiser.sigma_to_idx`:
  /// the integer timestep the UNet receives (`quantize_c_noise=True`, official §3.2).
  public func index(of sigma: Float) -> Int {
    var best = 0
    var bestDist = Float.infinity
    for (i, s) in sigmas.enumerated() {
      let d = abs(sigma - s)
      if d < bestDist {
        bestDist = d
        best = i
      }
    }
    return best
  }

  /// The timesteps of an N-step grid, descending (first = 999 for N < 1000): sgm
  /// `generate_roughly_equally_spaced_steps` = `np.linspace(999, 0, N, endpoint=False).astype(int)[::-1]`,
  /// listed in sampling order.
  public func timesteps(steps n: Int) throws -> [Int] {
    try check(n >= 1 && n <= count, "LegacyDDPMSchedule.timesteps", "steps must be in 1...\(count), got \(n)")
    if n == count { return Array((0..<count).reversed()) }
    // numpy: arange(0, N) * step + start, step = (stop − start)/N, then truncation toward zero.
    let start = Double(count - 1)
    let step = (0 - start) / Double(n)
    return (0..<n).map { Int(Double($0) * step + start) }
  }

  /// The σ grid of an N-step sampler: σ at `timesteps(steps: n)` (descending) followed by a final 0,
  /// so `n + 1` entries (sgm `Discretization.__call__` with `do_append_zero=True`).
  public func sigmas(steps n: Int) throws -> [Float] {
    try timesteps(steps: n).map { sigmas[$0] } + [0]
  }

  /// `torch.linspace(start, end, count, dtype=float64)`: the first half counts up from `start`, the
  /// second half down from `end` (ATen `linspace` kernel), which differs from numpy in the last bit.
  static func torchLinspace(_ start: Double, _ end: Double, count: Int) -> [Double] {
    let step = (end - start) / Double(count - 1)
    let halfway = count / 2
    return (0..<count).map { i in
      i < halfway ? start + step * Double(i) : end - step * Double(count - i - 1)
    }
  }
}
