import Foundation
import ModelIO
import Tensor
import Workflow

/// `load-image` (→ image): a PNG as an RGB image in [0, 1] (÷255 or ÷65535, as torchvision's ToTensor; gray is
/// repeated over RGB and alpha dropped, as PIL's convert("RGB") for opaque images). `width`/`height`, when set,
/// are checked at validation (a stage that needs 512² images refuses others before anything runs).
public struct LoadImageNode: ValidatingNodeType {
  public init() {}

  public var spec: NodeTypeSpec {
    NodeTypeSpec(
      name: "load-image", version: 1, doc: "reads a PNG as an RGB image",
      outputs: [PortSpec("image", Artifacts.image)],
      params: [
        ParamSpec("path", .file, doc: "PNG file (relative to the workflow file)"),
        ParamSpec("width", .int, default: .int(0), min: 0, doc: "required width in pixels (0: any)"),
        ParamSpec("height", .int, default: .int(0), min: 0, doc: "required height in pixels (0: any)"),
      ],
      resource: .io)
  }

  static func read(_ params: NodeParams) throws -> PNGImage {
    let path = try params.file("path")
    let png: PNGImage
    do { png = try PNGImage.read(path: path) } catch {
      throw NodeError.badInput(field: "path", "cannot read the PNG \(path): \(error)")
    }
    let w = try params.int("width")
    let h = try params.int("height")
    if (w > 0 && png.width != w) || (h > 0 && png.height != h) {
      throw NodeError.badInput(
        field: "path",
        "\(path) is \(png.width)×\(png.height) px, this stage needs \(w > 0 ? String(w) : "any")×\(h > 0 ? String(h) : "any")"
      )
    }
    return png
  }

  public func validate(params: NodeParams) -> [String] {
    problems { _ = try Self.read(params) }
  }

  public func run(inputs: NodeInputs, params: NodeParams, context: NodeContext) throws -> [String: Artifact] {
    let png = try Self.read(params)
    let t = png.tensor()
    let rgb: Tensor
    switch png.channels {
    case 3: rgb = t
    case 4: rgb = try Ops.split(t, axis: 1, sizes: [3, 1])[0]
    default:
      let gray = try Ops.split(t, axis: 1, sizes: png.channels == 2 ? [1, 1] : [1])[0]
      rgb = try Ops.concat([gray, gray, gray], axis: 1)
    }
    return ["image": try Artifacts.encodeImage(rgb)]
  }
}
