import Diffusion
import Foundation
import Models
import Tensor
import Workflow

/// Node types that check their parameters beyond the spec at validation time (model file kinds, sizes, files).
/// `WorkflowRunner.validate` calls it for every node instance and reports each message at the node's position.
public protocol ValidatingNodeType: NodeType {
  /// Problems with `params`, each starting with the field it concerns; empty when the node can run.
  func validate(params: NodeParams) -> [String]
}

/// A `model` parameter's check as a validation message (none when the file holds the right kind).
func checkModel(_ params: NodeParams, _ field: String, _ kind: ModelKind) -> [String] {
  guard let model = params.models[field] else { return ["\(field): no model given"] }
  return problems { try ModelConfig.check(model.path, kind: kind, field: field) }
}

/// The error `body` throws as a validation message (none when it succeeds).
func problems(_ body: () throws -> Void) -> [String] {
  do {
    try body()
    return []
  } catch { return ["\(error)"] }
}

/// Common parameters.
enum Params {
  static func model(_ doc: String) -> ParamSpec { ParamSpec("model", .model, doc: doc) }
  static let seed = ParamSpec(
    "seed", .int, default: .int(0), min: 0, max: Double(UInt32.max), doc: "noise seed (torch.manual_seed)")
  static let cfg = ParamSpec(
    "cfg", .float, default: .float(7.5), min: 0, max: 100,
    doc: "classifier-free guidance scale; for a distilled model (w_proj) the guidance scale w it was distilled for")
}

/// The UNet as the samplers' x0-denoiser, with CFG (zero context for the unconditional branch, official §2.1,
/// §5.4) or, for a distilled model, the guidance embedding of `cfg` through w_proj (§7).
struct UNetGuidance {
  let unet: UNet
  let cfg: Float

  var denoiser: EpsDenoiser {
    EpsDenoiser { [unet] input in
      guard let context = input.conditioning.context, let y = input.conditioning.vector else {
        throw NodeError.badInput(field: nil, "the UNet needs both a context and a vector conditioning")
      }
      return try unet.forward(
        input.x, timesteps: input.timesteps.map(Float.init), context: context, y: y,
        guidanceEmbedding: input.guidanceEmbedding)
    }
  }

  var guidance: (Conditioning) -> Guidance {
    { [unet, cfg] conditioning in
      if let dim = unet.configuration.guidanceEmbedDim { return .distilled(scale: cfg, embeddingDim: dim) }
      return .classifierFree(scale: cfg, unconditional: conditioning.zeroContext)
    }
  }

  /// D(x, σ) for `conditioning`.
  func guided(_ conditioning: Conditioning) -> Denoiser {
    denoiser.guided(conditioning, guidance: guidance(conditioning))
  }

  /// Checks the cond input against the UNet's context width.
  func checkContext(_ context: Tensor) throws {
    let width = unet.configuration.contextDim
    guard context.shape.last == width else {
      throw NodeError.badInput(
        field: "input 'cond'",
        "context is \(context.shape) but this UNet cross-attends to width \(width): encode the text with the matching T5"
      )
    }
  }
}

/// The step callback that reports progress to the engine (and stops when the run is cancelled).
func progressCallback(_ context: NodeContext) -> StepCallback {
  { step in
    try context.progress(step: step.index + 1, total: step.total)
    return .proceed
  }
}

/// Unit noise of `shape` from a torch-compatible generator seeded with `seed`: the `draw`-th draw (1-based).
func seededNoise(seed: Int, shape: [Int], draw: Int = 1) -> Tensor {
  var generator = TorchGenerator(seed: UInt64(seed))
  var eps = generator.randn(shape)
  for _ in 1..<max(draw, 1) { eps = generator.randn(shape) }
  return eps
}

/// The `noise` input when connected (checked against `shape`), else the seeded draw.
func noise(_ inputs: NodeInputs, shape: [Int], seed: Int, draw: Int = 1) throws -> Tensor {
  if let given = try optionalInput(inputs, "noise", Artifacts.decodeLatent) {
    guard given.shape == shape else {
      throw NodeError.badInput(field: "input 'noise'", "noise is \(given.shape), this node needs \(shape)")
    }
    return given
  }
  return seededNoise(seed: seed, shape: shape, draw: draw)
}

/// Checks a latent input's channel count.
func checkChannels(_ latent: Tensor, _ channels: Int, port: String) throws {
  guard latent.shape[1] == channels else {
    throw NodeError.badInput(
      field: "input '\(port)'", "latent has \(latent.shape[1]) channels (\(latent.shape)), this model needs \(channels)"
    )
  }
}
