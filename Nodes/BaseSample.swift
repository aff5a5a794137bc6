import Diffusion
import Foundation
import Tensor
import Workflow

/// `base-sample` (cond → latent): the base stage, Euler in σ-space over an N-step LegacyDDPM grid from
/// x_T = ε·√(1+σ_max²) (official §5.3) with CFG on the x0 prediction (§5.4), or with a distilled model (w_proj)
/// one pass per step with the guidance embedding of `cfg` (§7). ε is the first `randn([1, 4, H/8, W/8])` of a
/// generator seeded with `seed`, or the connected `noise` latent.
public struct BaseSampleNode: ValidatingNodeType {
  let pool: ModelPool

  public init(pool: ModelPool) { self.pool = pool }

  public var spec: NodeTypeSpec {
    NodeTypeSpec(
      name: "base-sample", version: 1,
      doc: "base stage: text context → latent (50 Euler steps, CFG 7.5; distilled: 4 or 8 steps, no CFG)",
      inputs: [
        PortSpec("cond", Artifacts.cond, doc: "the text context"),
        PortSpec(
          "noise", Artifacts.latent, doc: "unit noise ε [1, 4, H/8, W/8] replacing the seeded draw", optional: true),
      ],
      outputs: [PortSpec("latent", Artifacts.latent)],
      params: [
        Params.model(ModelKind.unet.rawValue),
        ParamSpec("size", .int, default: .int(512), min: 64, max: 2048, doc: "image side in pixels (multiple of 64)"),
        ParamSpec(
          "width", .int, default: .int(0), min: 0, max: 2048, doc: "image width for non-square images (0: size)"),
        ParamSpec(
          "height", .int, default: .int(0), min: 0, max: 2048, doc: "image height for non-square images (0: size)"),
        ParamSpec("steps", .int, default: .int(50), min: 1, max: 1000, doc: "Euler steps N (grid of N DDPM timesteps)"),
        Params.cfg, Params.seed,
      ],
      resource: .heavy)
  }

  static func imageSize(_ params: NodeParams) throws -> (height: Int, width: Int) {
    let size = try params.int("size")
    let w = try params.int("width")
    let h = try params.int("height")
    return (h > 0 ? h : size, w > 0 ? w : size)
  }

  public func validate(params: NodeParams) -> [String] {
    var problems = checkModel(params, "model", .unet)
    if let (h, w) = try? Self.imageSize(params), [h, w].contains(where: { $0 % 64 != 0 }) {
      problems.append("size: \(w)×\(h) px (width×height) is not a multiple of 64; use 64…2048 in steps of 64")
    }
    return problems
  }

  public func run(inputs: NodeInputs, params: NodeParams, context: NodeContext) throws -> [String: Artifact] {
    let (h, w) = try Self.imageSize(params)
    let cond = try input(inputs, "cond", Artifacts.decodeCond)
    let unet = try pool.unet(try params.model("model").path).value
    let guidance = UNetGuidance(unet: unet, cfg: Float(try params.double("cfg")))
    try guidance.checkContext(cond)
    let shape = [1, unet.configuration.inChannels, h / 8, w / 8]
    let eps = try noise(inputs, shape: shape, seed: try params.int("seed"))
    let conditioning = Conditioning(
      context: cond, vector: SizeConditioning.vector(originalSize: (h, w), targetSize: (h, w)))
    let steps = try params.int("steps")
    let sampler = BaseSampler(plan: StepPlan(gridSteps: steps, runSteps: steps))
    let latent = try sampler.sample(guidance.guided(conditioning), noise: eps, callback: progressCallback(context))
    return ["latent": try Artifacts.encodeLatent(latent)]
  }
}
