import Foundation
import Workflow

/// `tile` (→ tile plan): tile size and overlap in image pixels, for relay-sample (Mixture of Diffusers over
/// `tile/8`-pixel latent tiles), decode and encode-latent (tiled VAE with exact GroupNorm statistics).
public struct TileNode: ValidatingNodeType {
  public init() {}

  public var spec: NodeTypeSpec {
    NodeTypeSpec(
      name: "tile", version: 1, doc: "a tile plan for relay-sample, decode and encode-latent",
      outputs: [PortSpec("tiles", Artifacts.tiles)],
      params: [
        ParamSpec(
          "tile", .int, default: .int(1024), min: 64, max: 8192, doc: "tile side in image pixels (multiple of 8)"),
        ParamSpec(
          "overlap", .int, default: .int(256), min: 0, max: 8192, doc: "overlap in image pixels (multiple of 8)"),
      ])
  }

  public func validate(params: NodeParams) -> [String] {
    problems { _ = try TilePlan(tile: try params.int("tile"), overlap: try params.int("overlap")) }
  }

  public func run(inputs: NodeInputs, params: NodeParams, context: NodeContext) throws -> [String: Artifact] {
    ["tiles": Artifacts.encodeTiles(try TilePlan(tile: try params.int("tile"), overlap: try params.int("overlap")))]
  }
}
