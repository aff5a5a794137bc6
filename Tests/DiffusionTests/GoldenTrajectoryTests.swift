import XCTest

@testable import Diffusion
@testable import Tensor

/// The six sampler runs of golden.json (official EulerEDMSampler / LinearRelayEDMSampler / VanillaCFG /
/// IdentityGuider with a fixed fake ε-network), replayed step by step.
final class GoldenTrajectoryTests: XCTestCase {
  /// The script's `fake_network`: eps = tanh(0.7·x_in + 0.3·mean(ctx))·(0.5 + 0.25·cos(0.01·t)) + 0.1·mean(y)
  /// [+ 0.05·mean(g)·x_in].
  static let fakeNetwork: EpsilonModel = { input in
    let b = input.x.shape[0]
    func mean(_ t: Tensor?, _ i: Int) -> Float {
      guard let t else { return 0 }
      let n = t.count / b
      return Float(t.data[(i * n)..<((i + 1) * n)].reduce(0.0) { $0 + Double($1) } / Double(n))
    }
    var out = input.x
    let per = out.count / b
    for i in 0..<b {
      let cm = mean(input.conditioning.context, i)
      let vm = mean(input.conditioning.vector, i)
      let gm = input.guidanceEmbedding.map { mean($0, i) }
      let tf = 0.5 + 0.25 * cos(0.01 * Float(input.timesteps[i]))
      for j in (i * per)..<((i + 1) * per) {
        let xin = input.x.data[j]
        var e = tanh(0.7 * xin + 0.3 * cm) * tf + 0.1 * vm
        if let gm { e += 0.05 * gm * xin }
        out.data[j] = e
      }
    }
    return out
  }

  func testOfficialTrajectories() throws {
    let golden = try Golden.load()
    XCTAssertEqual(golden.cases.count, 6)
    for c in golden.cases {
      let noise = try Tensor(shape: c.shape, data: c.noise)
      let cond = Conditioning(
        context: try Tensor(shape: c.context_shape, data: c.context),
        vector: SizeConditioning.vector(imageSize: c.image_size))
      let guidance: Guidance =
        c.guider == "IdentityGuider"
        ? .distilled(scale: 7.5, embeddingDim: try XCTUnwrap(c.cfg_cond_embed_dim), batch: c.shape[0])
        : .classifierFree(scale: 7.5, unconditional: cond.zeroContext)
      var batches: [Int] = []
      let counted: EpsilonModel = { input in
        batches.append(input.x.shape[0])
        return try Self.fakeNetwork(input)
      }
      let inner = EpsDenoiser(model: counted).guided(cond, guidance: guidance)
      var states: [Tensor] = []
      let den: Denoiser = { x, sigma in
        states.append(x)
        return try inner(x, sigma)
      }
      let n = try XCTUnwrap(c.params["num_steps"])
      let out: Tensor
      if c.sampler == "EulerEDMSampler" {
        out = try BaseSampler(plan: StepPlan(gridSteps: n, runSteps: n)).sample(den, noise: noise)
      } else {
        let p = try XCTUnwrap(c.params["partial_num_steps"])
        out = try RelaySampler(plan: StepPlan(gridSteps: n, runSteps: p)).sample(
          den, lowLatent: Tensor(shape: c.shape, data: c.low), noise: noise)
      }
      XCTAssertEqual(states.count, c.states.count, c.name)
      // One model pass per step: batch 2 ([uncond, cond]) with CFG, batch 1 for the distilled models.
      XCTAssertEqual(batches, Array(repeating: c.guider == "IdentityGuider" ? 1 : 2, count: states.count), c.name)
      var worst: Float = 0
      for (i, (mine, ref)) in zip(states, c.states).enumerated() {
        let err = maxAbsDiff(mine.data, ref) / max(maxAbs(ref), 1)
        worst = max(worst, err)
        XCTAssertLessThanOrEqual(err, 2e-6, "\(c.name) step \(i)")
      }
      let errOut = maxAbsDiff(out.data, c.output) / max(maxAbs(c.output), 1)
      XCTAssertLessThanOrEqual(errOut, 2e-6, "\(c.name) output")
      print("golden \(c.name): worst step error \(worst), output error \(errOut)")
    }
  }
}
