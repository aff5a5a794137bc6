import Foundation
import ModelIO
import Tensor
import Workflow

/// `load-latent` (→ latent): one tensor from a safetensors file (`latent`, or the file's only tensor) as a latent
/// `[1, C, h, w]`, e.g. noise from another engine for a sampler's `noise` input. `channels` is checked at
/// validation.
public struct LoadLatentNode: ValidatingNodeType {
  public init() {}

  public var spec: NodeTypeSpec {
    NodeTypeSpec(
      name: "load-latent", version: 1, doc: "reads a latent (or noise) from a safetensors file",
      outputs: [PortSpec("latent", Artifacts.latent)],
      params: [
        ParamSpec("path", .file, doc: "safetensors file (relative to the workflow file)"),
        ParamSpec("channels", .int, default: .int(4), min: 1, max: 64, doc: "required channel count"),
      ],
      resource: .io)
  }

  static func read(_ params: NodeParams) throws -> Tensor {
    let path = try params.file("path")
    let tensor: Tensor
    do {
      let file = try SafetensorsFile(path: path)
      let key = file.keys.contains("latent") ? "latent" : (file.keys.count == 1 ? file.keys[0] : nil)
      guard let key else {
        throw NodeError.badInput(field: "path", "\(path) holds \(file.keys.count) tensors and none named 'latent'")
      }
      tensor = try file.tensor(key)
    } catch let error as NodeError { throw error } catch {
      throw NodeError.badInput(field: "path", "cannot read \(path): \(error)")
    }
    let channels = try params.int("channels")
    guard tensor.rank == 4, tensor.shape[0] == 1, tensor.shape[1] == channels else {
      throw NodeError.badInput(
        field: "path", "\(path) holds a \(tensor.shape) tensor; a latent here is [1, \(channels), h, w]")
    }
    return tensor
  }

  public func validate(params: NodeParams) -> [String] {
    problems { _ = try Self.read(params) }
  }

  public func run(inputs: NodeInputs, params: NodeParams, context: NodeContext) throws -> [String: Artifact] {
    ["latent": try Artifacts.encodeLatent(try Self.read(params))]
  }
}
