import Diffusion
import Foundation
import Tensor
import Workflow

/// `relay-sample` (cond + low latent → latent): the relay super-resolution sampler (official §6.2): the last
/// `steps` (P) of an N-point (`grid`) LegacyDDPM grid, starting at z^L + σ·ε with the blurring update
/// x ← r·x + (1−r+β)·D − β·z^L. Official: N = 24, P = 12, CFG 7.5; distilled: N = 5, P = 1 (released) or 2.
///
/// ε is the SECOND `randn` of the latent's shape from a generator seeded with `seed` (the official relay run
/// spends the first draw on the encoder posterior), or the connected `noise` latent.
///
/// With a tile plan the denoiser runs as a Mixture of Diffusers (Diffusion's `MixtureOfDiffusers`): each tile
/// is denoised with the vector conditioning of a crop of the full image (original size = the full image, crop =
/// the tile's offset, target = the tile's size; a tile covering the canvas gets exactly the untiled vector, so
/// it equals the untiled run) and the x0 predictions are blended with Gaussian weights.
public struct RelaySampleNode: ValidatingNodeType {
  let pool: ModelPool

  public init(pool: ModelPool) { self.pool = pool }

  public var spec: NodeTypeSpec {
    NodeTypeSpec(
      name: "relay-sample", version: 1,
      doc: "relay SR stage: refines the upsampled low-resolution latent (24-point grid, last 12 steps, CFG 7.5)",
      inputs: [
        PortSpec("cond", Artifacts.cond, doc: "the text context"),
        PortSpec("low", Artifacts.latent, doc: "z^L: the encoded, upsampled image of the previous stage"),
        PortSpec(
          "noise", Artifacts.latent, doc: "unit noise ε (the latent's shape) replacing the seeded draw", optional: true),
        PortSpec("tiles", Artifacts.tiles, doc: "a tile plan: Mixture-of-Diffusers tiled sampling", optional: true),
      ],
      outputs: [PortSpec("latent", Artifacts.latent)],
      params: [
        Params.model(ModelKind.unet.rawValue),
        ParamSpec("steps", .int, default: .int(12), min: 1, max: 1000, doc: "P: steps run (the last P of the grid)"),
        ParamSpec("grid", .int, default: .int(24), min: 1, max: 1000, doc: "N: points of the σ grid"),
        Params.cfg, Params.seed,
      ],
      resource: .heavy)
  }

  public func validate(params: NodeParams) -> [String] {
    var problems = checkModel(params, "model", .unet)
    if let p = try? params.int("steps"), let n = try? params.int("grid"), p > n {
      problems.append("steps: \(p) steps cannot run on a grid of \(n) points (steps ≤ grid)")
    }
    return problems
  }

  public func run(inputs: NodeInputs, params: NodeParams, context: NodeContext) throws -> [String: Artifact] {
    let cond = try input(inputs, "cond", Artifacts.decodeCond)
    let low = try input(inputs, "low", Artifacts.decodeLatent)
    let tiles = try optionalInput(inputs, "tiles", Artifacts.decodeTiles)
    let unet = try pool.unet(try params.model("model").path).value
    try checkChannels(low, unet.configuration.inChannels, port: "low")
    let guidance = UNetGuidance(unet: unet, cfg: Float(try params.double("cfg")))
    try guidance.checkContext(cond)
    let eps = try noise(inputs, shape: low.shape, seed: try params.int("seed"), draw: 2)
    let (h, w) = (low.shape[2] * 8, low.shape[3] * 8)
    let sampler = RelaySampler(plan: StepPlan(gridSteps: try params.int("grid"), runSteps: try params.int("steps")))

    let denoise: Denoiser
    if let tiles {
      let multiple = unet.configuration.sizeMultiple
      guard tiles.latentTile % multiple == 0 else {
        throw NodeError.badInput(
          field: "input 'tiles'", "tile \(tiles.tile) px is not a multiple of \(8 * multiple) px, which this UNet needs"
        )
      }
      let layout = try TileLayout.grid(
        height: low.shape[2], width: low.shape[3], tileHeight: tiles.latentTile, tileWidth: tiles.latentTile,
        overlap: tiles.latentOverlap)
      denoise = MixtureOfDiffusers(layout: layout).denoiser { x, sigma, tile in
        let y = SizeConditioning.vector(
          originalSize: (h, w), cropTopLeft: (tile.y * 8, tile.x * 8), targetSize: (tile.height * 8, tile.width * 8))
        return try guidance.guided(Conditioning(context: cond, vector: y))(x, sigma)
      }
    } else {
      denoise = guidance.guided(
        Conditioning(context: cond, vector: SizeConditioning.vector(originalSize: (h, w), targetSize: (h, w))))
    }
    let latent = try sampler.sample(denoise, lowLatent: low, noise: eps, callback: progressCallback(context))
    return ["latent": try Artifacts.encodeLatent(latent)]
  }
}
