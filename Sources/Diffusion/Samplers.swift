import Foundation
import Tensor

/// Draws standard normal noise of a shape (a seeded, torch-compatible generator behind a closure).
public typealias NoiseSource = (_ shape: [Int]) throws -> Tensor

/// What a sampler reports after each step: for progress bars, previews and cancellation.
public struct SamplerStep {
  /// 0-based index among the executed steps.
  public let index: Int
  /// Number of executed steps.
  public let total: Int
  /// σ of this step and of the next (0 after the last).
  public let sigma: Float
  public let nextSigma: Float
  /// The x0 prediction D(x, σ) of this step.
  public let denoised: Tensor
  /// The state after the step.
  public let x: Tensor
}

/// A step callback's answer. Returning `.stop` (or throwing) ends sampling with
/// `DiffusionError.cancelled` (or the thrown error); nothing partial is returned.
public enum StepDecision: Sendable { case proceed, stop }

public typealias StepCallback = (SamplerStep) throws -> StepDecision

/// Which steps of which σ grid a sampler runs: an N-point LegacyDDPM grid of which the last P steps run.
/// Base samplers run all of them (P = N); the relay sampler runs the tail (official §6.2, §7).
public struct StepPlan: Codable, Hashable, Sendable {
  /// N: the grid is `LegacyDDPMSchedule.sigmas(steps: N)`.
  public var gridSteps: Int
  /// P: the number of steps run, the last P of the grid.
  public var runSteps: Int

  public init(gridSteps: Int, runSteps: Int) {
    self.gridSteps = gridSteps
    self.runSteps = runSteps
  }

  /// Official base: 50 Euler steps, t = 999, 979, …, 19 (`cogview3_base.yaml`).
  public static let base = StepPlan(gridSteps: 50, runSteps: 50)
  /// Official relay: a 24-point grid, its last 12 steps, t = 499, 457, …, 41 (`cogview3_relay.yaml`).
  public static let relay = StepPlan(gridSteps: 24, runSteps: 12)
  /// Distilled base, 4 steps: t = 999, 749, 499, 249 (`cogview3_base_distill_4step.yaml`).
  public static let distilledBase4 = StepPlan(gridSteps: 4, runSteps: 4)
  /// Distilled base, 8 steps: t = 999, 874, …, 124. No official config exists; N = 8 on the same grid
  /// family is the natural reading of "8-step" (official §7, open question 1).
  public static let distilledBase8 = StepPlan(gridSteps: 8, runSteps: 8)
  /// Distilled relay, 1 step: grid N = 5, P = 1, a single step from t = 199 that returns D
  /// (`cogview3_relay_distill_1step.yaml`).
  public static let distilledRelay1 = StepPlan(gridSteps: 5, runSteps: 1)
  /// Distilled relay, 2 steps. No official config exists (official §12.1); our choice is the released
  /// 1-step grid with one more step, N = 5, P = 2: t = 399 (σ 1.160578, blur k/P = 1) then t = 199
  /// (k = 1, returns D). Why: its last step is exactly the one step the 1-step relay checkpoint was
  /// distilled for, the start σ stays inside the relay's training range (T_r = 500, t < 500), and the blur
  /// fraction k/P = 1, ½ keeps the linear-blur schedule of the non-distilled sampler. A parameter, so a
  /// published config can replace it.
  public static let distilledRelay2 = StepPlan(gridSteps: 5, runSteps: 2)

  /// The full N-step σ grid (N + 1 entries, descending, final 0) after checking the plan.
  public func sigmas(_ schedule: LegacyDDPMSchedule) throws -> [Float] {
    try check(
      runSteps >= 1 && runSteps <= gridSteps, "StepPlan",
      "runSteps must be in 1...gridSteps (\(gridSteps)), got \(runSteps)")
    return try schedule.sigmas(steps: gridSteps)
  }

  /// The DDPM timesteps of the executed steps, in order.
  public func executedTimesteps(_ schedule: LegacyDDPMSchedule) throws -> [Int] {
    _ = try sigmas(schedule)
    return Array(try schedule.timesteps(steps: gridSteps).suffix(runSteps))
  }
}

/// The sampler loops, as small functions over an x0-denoiser closure (STYLE §2).
public enum Sampler {
  /// √(1+σ_max²) in float32: sgm `prepare_sampling_loop` scales the unit noise by it (official §5.3).
  public static func initialNoiseScale(sigmaMax: Float) -> Float { (1 + sigmaMax * sigmaMax).squareRoot() }

  /// Euler in σ-space with s_churn = 0, i.e. DDIM η = 0 (sgm `EulerEDMSampler`, official §5.3):
  /// per step D = denoise(x, σ_i), d = (x − D)/σ_i, x ← x + (σ_{i+1} − σ_i)·d; the final σ = 0 makes x = D.
  /// `x` is the already scaled start x_T; `sigmas` the descending grid ending in 0.
  public static func euler(
    _ denoise: Denoiser, x start: Tensor, sigmas: [Float], callback: StepCallback? = nil
  ) throws -> Tensor {
    let op = "Sampler.euler"
    try check(sigmas.count >= 2, op, "needs a σ grid of at least 2 entries, got \(sigmas.count)")
    var x = start
    let total = sigmas.count - 1
    for i in 0..<total {
      let sigma = sigmas[i]
      let next = sigmas[i + 1]
      try check(sigma > 0, op, "σ[\(i)] = \(sigma) must be positive")
      let d0 = try denoise(x, sigma)
      try checkShapes(d0.shape, x.shape, op, "the denoiser must return the input's shape")
      let dt = next - sigma
      x.withUnsafeMutableBufferPointer { px in
        d0.withUnsafeBufferPointer { pd in
          for j in 0..<px.count { px[j] = px[j] + dt * ((px[j] - pd[j]) / sigma) }
        }
      }
      try report(callback, op, SamplerStep(index: i, total: total, sigma: sigma, nextSigma: next, denoised: d0, x: x))
    }
    return x
  }

  /// The relay (super-resolution) sampler, sgm `LinearRelayEDMSampler` (official §6.2; THUDM/CogView3
  /// `sat/sgm/modules/diffusionmodules/sampling.py` l.455–506). Of the N-step grid `sigmas` (N + 1 entries)
  /// only the last P steps run. Start: x = z^L + σ[N−P]·ε (no √(1+σ²) factor). Step i (k = N − i = P…1
  /// steps left, r = σ[i+1]/σ[i], D = denoise(x, σ[i])):
  ///
  ///     β = r·k/P − (k−1)/P
  ///     x ← r·x + (1 − r + β)·D − β·z^L
  ///
  /// The last step has σ[N] = 0, so r = β = 0 and x = D.
  ///
  /// Equivalence with the paper's Algorithm 1 (blurring diffusion, a_t = σ_{t−1}/σ_t, b_t = 1/t,
  /// c_t = (t−1)/t − a_t, with t = k): write the current blurred estimate F_k = D + (k/P)(z^L − D), the point
  /// between the low-resolution latent and the prediction at blur fraction k/P. Then
  ///
  ///     a·x + b·D + c·F_k
  ///       = r·x + D/k + ((k−1)/k − r)·(D + (k/P)(z^L − D))
  ///       = r·x + D/k + ((k−1)/k − r)·D + ((k−1)/P − r·k/P)·(z^L − D)
  ///       = r·x + (1 − r)·D − β·(z^L − D)               [since (k−1)/P − r·k/P = −β]
  ///       = r·x + (1 − r + β)·D − β·z^L,
  ///
  /// which is the update above. Equivalently x_{k−1} = F_{k−1} + r·(x_k − F_k): the DDIM (η = 0) step of the
  /// process x_k = F_k + σ_k·ε whose mean moves linearly from z^L (k = P) to D (k = 0); the test
  /// `testRelayFollowsBlurredProcessExactly` checks that identity on a fixed D.
  public static func relay(
    _ denoise: Denoiser, lowLatent: Tensor, noise: Tensor, sigmas: [Float], partialSteps: Int,
    callback: StepCallback? = nil
  ) throws -> Tensor {
    let op = "Sampler.relay"
    let n = sigmas.count - 1
    try check(n >= 1, op, "needs a σ grid of at least 2 entries, got \(sigmas.count)")
    try check(partialSteps >= 1 && partialSteps <= n, op, "partial steps must be in 1...\(n), got \(partialSteps)")
    try checkShapes(noise.shape, lowLatent.shape, op, "noise must have the low-resolution latent's shape")
    let p = partialSteps
    let first = n - p
    let s0 = sigmas[first]
    var x = lowLatent
    x.withUnsafeMutableBufferPointer { px in
      noise.withUnsafeBufferPointer { pn in
        for j in 0..<px.count { px[j] = px[j] + pn[j] * s0 }
      }
    }
    for i in first..<n {
      let sigma = sigmas[i]
      let next = sigmas[i + 1]
      try check(sigma > 0, op, "σ[\(i)] = \(sigma) must be positive")
      let k = n - i
      let d0 = try denoise(x, sigma)
      try checkShapes(d0.shape, x.shape, op, "the denoiser must return the input's shape")
      // float32 in sgm's operation order: (r·k)/P − Float((k−1)/P), then r·x + D·(1 − r + β) − z·β.
      let r = next / sigma
      let beta = r * Float(k) / Float(p) - Float(Double(k - 1) / Double(p))
      let cD = 1 - r + beta
      x.withUnsafeMutableBufferPointer { px in
        d0.withUnsafeBufferPointer { pd in
          lowLatent.withUnsafeBufferPointer { pz in
            for j in 0..<px.count { px[j] = px[j] * r + pd[j] * cD - pz[j] * beta }
          }
        }
      }
      try report(
        callback, op,
        SamplerStep(index: i - first, total: p, sigma: sigma, nextSigma: next, denoised: d0, x: x))
    }
    return x
  }

  static func report(_ callback: StepCallback?, _ op: String, _ step: SamplerStep) throws {
    guard let callback else { return }
    if try callback(step) == .stop {
      throw DiffusionError.cancelled(op: op, completedSteps: step.index + 1)
    }
  }
}

/// The base (text-to-image) stage: Euler over a step plan from x_T = ε·√(1+σ_max²).
/// With `StepPlan.base` and `Guidance.classifierFree(scale: 7.5, …)` this is the official base sampler;
/// with `.distilledBase4`/`.distilledBase8` and `Guidance.distilled(embeddingDim: 512)` the distilled one.
public struct BaseSampler: Sendable {
  public var schedule: LegacyDDPMSchedule
  public var plan: StepPlan

  public init(schedule: LegacyDDPMSchedule = .cogView3, plan: StepPlan = .base) {
    self.schedule = schedule
    self.plan = plan
  }

  /// Samples from unit noise `noise` `[B, C, H, W]` (scaled here by √(1+σ_max²)).
  public func sample(_ denoise: Denoiser, noise: Tensor, callback: StepCallback? = nil) throws -> Tensor {
    let all = try plan.sigmas(schedule)
    // A base plan runs its last P steps; the start noise is scaled by the first *executed* σ.
    let sigmas = Array(all.suffix(plan.runSteps + 1))
    let x = Ops.affine(noise, scale: Sampler.initialNoiseScale(sigmaMax: sigmas[0]))
    return try Sampler.euler(denoise, x: x, sigmas: sigmas, callback: callback)
  }

  /// Samples a `[B, C, H, W]` latent drawing the unit noise from `noise`.
  public func sample(
    _ denoise: Denoiser, shape: [Int], noise: NoiseSource, callback: StepCallback? = nil
  ) throws -> Tensor {
    let eps = try noise(shape)
    try checkShapes(eps.shape, shape, "BaseSampler", "the noise source returned the wrong shape")
    return try sample(denoise, noise: eps, callback: callback)
  }
}

/// The relay (super-resolution) stage over a step plan; `StepPlan.relay` with CFG 7.5 is the official one,
/// `.distilledRelay1`/`.distilledRelay2` with `Guidance.distilled(embeddingDim: 256)` the distilled ones.
public struct RelaySampler: Sendable {
  public var schedule: LegacyDDPMSchedule
  public var plan: StepPlan

  public init(schedule: LegacyDDPMSchedule = .cogView3, plan: StepPlan = .relay) {
    self.schedule = schedule
    self.plan = plan
  }

  /// Refines the upsampled low-resolution latent z^L `[B, C, H, W]` with unit noise of the same shape.
  public func sample(
    _ denoise: Denoiser, lowLatent: Tensor, noise: Tensor, callback: StepCallback? = nil
  ) throws -> Tensor {
    try Sampler.relay(
      denoise, lowLatent: lowLatent, noise: noise, sigmas: plan.sigmas(schedule), partialSteps: plan.runSteps,
      callback: callback)
  }

  public func sample(
    _ denoise: Denoiser, lowLatent: Tensor, noise: NoiseSource, callback: StepCallback? = nil
  ) throws -> Tensor {
    let eps = try noise(lowLatent.shape)
    try checkShapes(eps.shape, lowLatent.shape, "RelaySampler", "the noise source returned the wrong shape")
    return try sample(denoise, lowLatent: lowLatent, noise: eps, callback: callback)
  }
}
