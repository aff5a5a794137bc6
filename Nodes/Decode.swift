import Diffusion
import Foundation
import ModelIO
import Models
import Tensor
import Workflow

/// `decode` (latent → image): the KL decoder, z / 0.13025 → post_quant_conv → decoder → clamp((x+1)/2, 0, 1)
/// (official `decode_first_stage`), then `quantize`: `truncate` = the 8-bit PNG the official base run writes
/// (⌊255·x⌋/255, §6.1), `round` = ⌊255·x + ½⌋/255, `none` = the float image. With a tile plan the decoder runs
/// in tiles of `tile / 8` latent pixels with exact GroupNorm statistics and global mid-attention
/// (Models' `TiledAutoencoder`, equal to untiled up to float rounding).
public struct DecodeNode: ValidatingNodeType {
  let pool: ModelPool

  public init(pool: ModelPool) { self.pool = pool }

  public var spec: NodeTypeSpec {
    NodeTypeSpec(
      name: "decode", version: 1, doc: "KL autoencoder decode: latent → RGB image in [0, 1]",
      inputs: [
        PortSpec("latent", Artifacts.latent),
        PortSpec("tiles", Artifacts.tiles, doc: "a tile plan: tiled decoding for large images", optional: true),
      ],
      outputs: [PortSpec("image", Artifacts.image)],
      params: [
        Params.model(ModelKind.vae.rawValue),
        ParamSpec(
          "quantize", .choice(["truncate", "round", "none"]), default: .string("truncate"),
          doc: "8-bit levels as the official PNG hand-over (truncate), rounded, or none (float)"),
      ],
      resource: .heavy)
  }

  public func validate(params: NodeParams) -> [String] { checkModel(params, "model", .vae) }

  public func run(inputs: NodeInputs, params: NodeParams, context: NodeContext) throws -> [String: Artifact] {
    let latent = try input(inputs, "latent", Artifacts.decodeLatent)
    let tiles = try optionalInput(inputs, "tiles", Artifacts.decodeTiles)
    let vae = try pool.vae(try params.model("model").path).value
    try checkChannels(latent, vae.configuration.embedDim, port: "latent")
    try context.checkCancelled()
    var image: Tensor
    if let tiles {
      let z = Ops.affine(latent, scale: 1 / vae.configuration.scaleFactor)
      let x = try TiledAutoencoder(vae).decode(z, runner: TiledGroupNormRunner.stageRunner(tile: tiles.latentTile))
      image = Ops.clamp(Ops.affine(x, scale: 0.5, shift: 0.5), 0, 1)
    } else {
      image = try vae.decodeScaled(latent)
    }
    switch try params.string("quantize") {
    case "truncate": image = try PNGImage(tensor: image, quantization: .truncate).tensor()
    case "round": image = try PNGImage(tensor: image, quantization: .round).tensor()
    default: break
    }
    return ["image": try Artifacts.encodeImage(image)]
  }
}
