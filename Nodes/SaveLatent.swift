import Foundation
import ModelIO
import Tensor
import Workflow

/// `save-latent` (latent →, always runs): writes the latent as safetensors (tensor `latent`, float32) to `path`,
/// with the same substitutions as save-image's path.
public struct SaveLatentNode: NodeType {
  public init() {}

  public var spec: NodeTypeSpec {
    NodeTypeSpec(
      name: "save-latent", version: 1, doc: "writes a latent as safetensors (always runs)",
      inputs: [PortSpec("latent", Artifacts.latent)], outputs: [],
      params: [ParamSpec("path", .string, doc: "output file; {name}, {node} and {PARAM} are substituted")],
      resource: .io, cachePolicy: .alwaysRun)
  }

  public func run(inputs: NodeInputs, params: NodeParams, context: NodeContext) throws -> [String: Artifact] {
    let latent = try input(inputs, "latent", Artifacts.decodeLatent)
    let path = try SaveImageNode.outputPath(params, context)
    try SafetensorsWriter.write(["latent": StoredTensor(latent)], metadata: ["cogflow": "latent"], to: path)
    return [:]
  }
}
