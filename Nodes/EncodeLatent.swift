import Diffusion
import Foundation
import Models
import Tensor
import Workflow

/// `encode-latent` (image → latent): the KL encoder on the image mapped to [−1, 1] (×2 − 1, official §6.1),
/// then the posterior `sample` (mean + std·ε, official) or `mean`, ×0.13025. ε is the first
/// `randn(shape of the mean)` of a generator seeded with `seed`, or the connected `noise` latent. With a tile plan
/// the encoder runs in `tile`-pixel tiles with exact GroupNorm statistics (Models' `TiledAutoencoder`).
public struct EncodeLatentNode: ValidatingNodeType {
  let pool: ModelPool

  public init(pool: ModelPool) { self.pool = pool }

  public var spec: NodeTypeSpec {
    NodeTypeSpec(
      name: "encode-latent", version: 1, doc: "KL autoencoder encode: RGB image in [0, 1] → scaled latent",
      inputs: [
        PortSpec("image", Artifacts.image),
        PortSpec("noise", Artifacts.latent, doc: "posterior noise replacing the seeded draw", optional: true),
        PortSpec("tiles", Artifacts.tiles, doc: "a tile plan: tiled encoding for large images", optional: true),
      ],
      outputs: [PortSpec("latent", Artifacts.latent)],
      params: [
        Params.model(ModelKind.vae.rawValue),
        ParamSpec(
          "mode", .choice(["sample", "mean"]), default: .string("sample"),
          doc: "posterior sample (official) or its mean"),
        Params.seed,
      ],
      resource: .heavy)
  }

  public func validate(params: NodeParams) -> [String] { checkModel(params, "model", .vae) }

  public func run(inputs: NodeInputs, params: NodeParams, context: NodeContext) throws -> [String: Artifact] {
    let image = try input(inputs, "image", Artifacts.decodeImage)
    let tiles = try optionalInput(inputs, "tiles", Artifacts.decodeTiles)
    let vae = try pool.vae(try params.model("model").path).value
    let f = vae.configuration.downsampleFactor
    guard image.shape[2] % f == 0, image.shape[3] % f == 0 else {
      throw NodeError.badInput(
        field: "input 'image'", "\(image.shape[3])×\(image.shape[2]) px is not a multiple of \(f) on each side")
    }
    try context.checkCancelled()
    let x = Ops.affine(image, scale: 2, shift: -1)
    let posterior =
      try tiles.map { try TiledAutoencoder(vae).encode(x, runner: TiledGroupNormRunner.stageRunner(tile: $0.tile)) }
      ?? vae.encode(x)
    var z = posterior.mean
    if try params.string("mode") == "sample" {
      z = try posterior.sample(noise: try noise(inputs, shape: posterior.mean.shape, seed: try params.int("seed")))
    }
    return ["latent": try Artifacts.encodeLatent(Ops.affine(z, scale: vae.configuration.scaleFactor))]
  }
}
