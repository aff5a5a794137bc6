import Foundation
import Tensor
import Workflow

/// `upsample` (image → image): bilinear ×factor, align_corners false, no antialias (official §6.1,
/// `F.interpolate(scale_factor=2, mode="bilinear")`). Resized in [0, 1]; the official resizes the [−1, 1] image,
/// which differs only by float rounding (bilinear weights commute with x ↦ 2x − 1).
public struct UpsampleNode: NodeType {
  public init() {}

  public var spec: NodeTypeSpec {
    NodeTypeSpec(
      name: "upsample", version: 1, doc: "bilinear upsampling of an image (official relay hand-over: ×2)",
      inputs: [PortSpec("image", Artifacts.image)], outputs: [PortSpec("image", Artifacts.image)],
      params: [ParamSpec("factor", .int, default: .int(2), min: 1, max: 8, doc: "scale factor")], resource: .light)
  }

  public func run(inputs: NodeInputs, params: NodeParams, context: NodeContext) throws -> [String: Artifact] {
    let image = try input(inputs, "image", Artifacts.decodeImage)
    let f = try params.int("factor")
    let out = try Ops.resizeBilinear(image, height: image.shape[2] * f, width: image.shape[3] * f)
    return ["image": try Artifacts.encodeImage(out)]
  }
}
