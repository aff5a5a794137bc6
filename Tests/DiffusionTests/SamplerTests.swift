import XCTest

@testable import Diffusion
@testable import Tensor

/// Samplers against denoisers whose ideal output is known in closed form.
final class SamplerTests: XCTestCase {
  let schedule = LegacyDDPMSchedule.cogView3

  /// The ε-network that makes D(x, σ) = ideal(x, σ): ε = (x − D)/σ with x = x_in·√(σ²+1), σ = table[t].
  func epsModel(_ ideal: @escaping (Tensor, Float) -> Tensor) -> EpsilonModel {
    let table = schedule.sigmas
    return { input in
      let sigma = table[input.timesteps[0]]
      let x = Ops.affine(input.x, scale: (sigma * sigma + 1).squareRoot())
      let d = ideal(x, sigma)
      return try Ops.affine(Ops.sub(x, d), scale: 1 / sigma)
    }
  }

  /// Data = one point x0: D ≡ x0, so every Euler state satisfies x_i − x0 = (σ_i/σ_0)(x_T − x0) and x_end = x0.
  func testEulerOnSinglePoint() throws {
    let x0 = pseudoRandom([1, 3, 4, 4], seed: 11)
    let noise = pseudoRandom([1, 3, 4, 4], seed: 12)
    let den = EpsDenoiser(model: epsModel { _, _ in x0 }).guided(Conditioning(), guidance: .none())
    let sigmas = try schedule.sigmas(steps: 50)
    let scale = Sampler.initialNoiseScale(sigmaMax: sigmas[0])
    XCTAssertEqual(scale, 14.648814, accuracy: 2e-6)
    var steps = 0
    let out = try BaseSampler(plan: .base).sample(den, noise: noise) { step in
      let ratio = Double(step.nextSigma) / Double(sigmas[0])
      for j in 0..<x0.count {
        let expected = Double(x0.data[j]) + ratio * (Double(noise.data[j]) * Double(scale) - Double(x0.data[j]))
        XCTAssertEqual(Double(step.x.data[j]), expected, accuracy: 2e-5 * (1 + abs(expected)))
      }
      steps += 1
      return .proceed
    }
    XCTAssertEqual(steps, 50)
    XCTAssertLessThanOrEqual(maxAbsDiff(out.data, x0.data), 1e-5)
  }

  /// Data ~ N(μ, s²I): D(x, σ) = μ + s²/(s²+σ²)(x − μ). One DDIM step maps x − μ by (s² + σ_iσ_{i+1})/(s² + σ_i²);
  /// on a fine grid the end point approaches the probability-flow ODE solution μ + s(x_T − μ)/√(s² + σ_max²).
  func testEulerOnGaussian() throws {
    let mu: Float = 0.3
    let s: Float = 0.7
    let ideal: (Tensor, Float) -> Tensor = { x, sigma in
      Ops.affine(x, scale: s * s / (s * s + sigma * sigma), shift: mu * sigma * sigma / (s * s + sigma * sigma))
    }
    let noise = pseudoRandom([1, 2, 3, 3], seed: 21)
    let den = EpsDenoiser(model: epsModel(ideal)).guided(Conditioning(), guidance: .none())
    for n in [50, 1000] {
      let sigmas = try schedule.sigmas(steps: n)
      let scale = Double(Sampler.initialNoiseScale(sigmaMax: sigmas[0]))
      var factor = 1.0
      let out = try BaseSampler(plan: StepPlan(gridSteps: n, runSteps: n)).sample(den, noise: noise) { step in
        let (a, b, ss) = (Double(step.sigma), Double(step.nextSigma), Double(s * s))
        factor *= (ss + a * b) / (ss + a * a)
        for j in 0..<noise.count {
          let expected = Double(mu) + factor * (Double(noise.data[j]) * scale - Double(mu))
          XCTAssertEqual(Double(step.x.data[j]), expected, accuracy: 1e-4 * (1 + abs(expected)))
        }
        return .proceed
      }
      if n == 1000 {
        let ode = Double(s) / (Double(s * s) + Double(sigmas[0] * sigmas[0])).squareRoot()
        for j in 0..<noise.count {
          let expected = Double(mu) + ode * (Double(noise.data[j]) * scale - Double(mu))
          XCTAssertEqual(Double(out.data[j]), expected, accuracy: 5e-3 * (1 + abs(expected)))
        }
      }
    }
  }

  /// With D ≡ x0 the relay state is exactly the blurred process x_k = F_k + σ·ε, F_k = x0 + (k/P)(z^L − x0),
  /// at every step (the Algorithm-1 equivalence documented on `Sampler.relay`), and ends at x0.
  func testRelayFollowsBlurredProcessExactly() throws {
    let x0 = pseudoRandom([1, 4, 3, 5], seed: 31)
    let z = pseudoRandom([1, 4, 3, 5], seed: 32, scale: 0.5)
    let eps = pseudoRandom([1, 4, 3, 5], seed: 33)
    for plan in [StepPlan.relay, .distilledRelay1, .distilledRelay2, StepPlan(gridSteps: 10, runSteps: 7)] {
      let sigmas = try plan.sigmas(schedule)
      let n = plan.gridSteps
      let p = plan.runSteps
      let den: Denoiser = { x, _ in x0 }
      var seen = 0
      let out = try RelaySampler(plan: plan).sample(den, lowLatent: z, noise: eps) { step in
        let i = n - p + step.index
        let kNext = Double(n - i - 1)
        for j in 0..<x0.count {
          let f = Double(x0.data[j]) + kNext / Double(p) * Double(z.data[j] - x0.data[j])
          let expected = f + Double(sigmas[i + 1]) * Double(eps.data[j])
          XCTAssertEqual(Double(step.x.data[j]), expected, accuracy: 1e-5 * (1 + abs(expected)), "plan \(plan)")
        }
        seen += 1
        return .proceed
      }
      XCTAssertEqual(seen, p)
      XCTAssertEqual(out, x0, "the last relay step returns D exactly")
    }
  }

  func testRelayStartsAtLowLatentPlusSigmaNoise() throws {
    let z = pseudoRandom([1, 2, 2, 2], seed: 41)
    let eps = pseudoRandom([1, 2, 2, 2], seed: 42)
    var first: (Tensor, Float)?
    let den: Denoiser = { x, sigma in
      if first == nil { first = (x, sigma) }
      return x
    }
    _ = try RelaySampler(plan: .relay).sample(den, lowLatent: z, noise: eps)
    let (x, sigma) = try XCTUnwrap(first)
    XCTAssertEqual(sigma, try schedule.sigma(at: 499))
    for j in 0..<z.count { XCTAssertEqual(x.data[j], z.data[j] + eps.data[j] * sigma) }
  }

  /// CFG: one model call with batch [uncond, cond], uncond context zeros, shared vector; D = D_u + s(D_c − D_u).
  func testClassifierFreeGuidanceBatchOrderAndCombination() throws {
    let ctx = pseudoRandom([1, 3, 4], seed: 51)
    let y = SizeConditioning.vector(imageSize: 512)
    let cond = Conditioning(context: ctx, vector: y)
    var calls = 0
    let model: EpsilonModel = { input in
      calls += 1
      let b = input.x.shape[0]
      var out = input.x
      for bi in 0..<b {
        let c = input.conditioning.context!.data[(bi * 12)..<((bi + 1) * 12)].reduce(0, +)
        for j in 0..<(out.count / b) { out.data[bi * out.count / b + j] = sin(out.data[bi * out.count / b + j]) + c }
      }
      return out
    }
    let inspect: EpsilonModel = { input in
      XCTAssertEqual(input.x.shape[0], 2)
      XCTAssertEqual(Array(input.conditioning.context!.data[0..<12]), Array(repeating: 0, count: 12))
      XCTAssertEqual(Array(input.conditioning.context!.data[12..<24]), ctx.data)
      XCTAssertEqual(Array(input.conditioning.vector!.data[0..<1536]), Array(input.conditioning.vector!.data[1536...]))
      XCTAssertEqual(input.timesteps, [499, 499])
      return try model(input)
    }
    let eps = EpsDenoiser(model: inspect)
    let x = pseudoRandom([1, 2, 3, 3], seed: 52)
    let sigma = schedule.sigmas[499]
    let guided = try eps.guided(cond, guidance: .classifierFree(scale: 7.5, unconditional: cond.zeroContext))(x, sigma)
    XCTAssertEqual(calls, 1, "one model call of batch 2")
    let plain = EpsDenoiser(model: model)
    let dc = try plain.denoise(x, sigma: sigma, conditioning: cond)
    let du = try plain.denoise(x, sigma: sigma, conditioning: cond.zeroContext)
    for j in 0..<x.count {
      XCTAssertEqual(guided.data[j], du.data[j] + 7.5 * (dc.data[j] - du.data[j]), accuracy: 1e-5)
    }
    XCTAssertGreaterThan(maxAbsDiff(dc.data, du.data), 0.1, "the test model must depend on the context")
  }

  /// EpsScaling: the network sees x/√(σ²+1) and the integer index; D = x − σ·ε.
  func testEpsDenoiserScalings() throws {
    let x = pseudoRandom([2, 1, 2, 2], seed: 61)
    let sigma = schedule.sigmas[700]
    var seen: ModelInput?
    let den = EpsDenoiser { input in
      seen = input
      return Tensor(repeating: 0.25, shape: input.x.shape)
    }
    let g = Guidance.distilled(embeddingDim: 8, batch: 2)
    guard case .none(let emb) = g else { return XCTFail() }
    let d = try den.denoise(x, sigma: sigma * (1 + 1e-7), conditioning: Conditioning(), guidanceEmbedding: emb)
    let input = try XCTUnwrap(seen)
    XCTAssertEqual(input.timesteps, [700, 700])
    XCTAssertEqual(input.guidanceEmbedding, emb)
    for j in 0..<x.count {
      XCTAssertEqual(input.x.data[j], x.data[j] / (sigma * sigma + 1).squareRoot(), accuracy: 1e-6)
      XCTAssertEqual(d.data[j], x.data[j] - sigma * 0.25, accuracy: 1e-6)
    }
    XCTAssertThrowsError(try den.denoise(x, sigma: sigma, conditioning: Conditioning(vector: Tensor(zeros: [3, 4]))))
  }

  func testCallbackStopsAndThrows() throws {
    var calls = 0
    let den: Denoiser = { x, _ in
      calls += 1
      return x
    }
    let noise = pseudoRandom([1, 1, 2, 2], seed: 71)
    XCTAssertThrowsError(try BaseSampler().sample(den, noise: noise) { $0.index == 2 ? .stop : .proceed }) { error in
      XCTAssertEqual(error as? DiffusionError, .cancelled(op: "Sampler.euler", completedSteps: 3))
    }
    XCTAssertEqual(calls, 3)
    struct Interrupt: Error {}
    XCTAssertThrowsError(
      try RelaySampler().sample(den, lowLatent: noise, noise: noise) { step in
        if step.index == 1 { throw Interrupt() }
        return .proceed
      }
    ) { XCTAssertTrue($0 is Interrupt) }
    XCTAssertThrowsError(try RelaySampler().sample(den, lowLatent: noise, noise: Tensor(zeros: [1, 1, 2, 3])))
    XCTAssertThrowsError(try BaseSampler().sample(den, shape: [1, 1, 2, 2], noise: { _ in Tensor(zeros: [1]) }))
    XCTAssertThrowsError(try Sampler.euler({ x, _ in Tensor(zeros: [1]) }, x: noise, sigmas: [1, 0]))
  }
}
