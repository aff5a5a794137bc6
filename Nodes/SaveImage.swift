import Foundation
import ModelIO
import Workflow

/// `save-image` (image →, always runs): writes an 8-bit RGB PNG (truncated as the official run, or rounded) to
/// `path` with PNG text chunks from `provenanceChunks`.
///
/// `path` substitutions (single braces, filled when the node runs): `{name}` the workflow name, `{node}` this
/// node's id, and `{P}` the value of workflow parameter `P` after defaults and `--set` (e.g. `{seed}`,
/// `{size}`); `{{`/`}}` are literal braces. Matrix variables are engine references: write `${seed}` for them.
/// A relative path is relative to the current directory; missing folders are created.
public struct SaveImageNode: ValidatingNodeType {
  public init() {}

  public var spec: NodeTypeSpec {
    NodeTypeSpec(
      name: "save-image", version: 1, doc: "writes an image as a PNG with provenance text chunks (always runs)",
      inputs: [PortSpec("image", Artifacts.image)], outputs: [],
      params: [
        ParamSpec(
          "path", .string, default: .string("out/{name}-{seed}.png"),
          doc: "output file; {name}, {node} and {PARAM} (a workflow parameter) are substituted"),
        ParamSpec(
          "quantize", .choice(["truncate", "round"]), default: .string("truncate"),
          doc: "8-bit conversion: truncate (official) or round"),
      ],
      resource: .io, cachePolicy: .alwaysRun)
  }

  /// `template` with `{name}`, `{node}` and `{PARAM}` filled in; throws naming an unknown placeholder.
  public static func substitute(_ template: String, name: String, node: String, params: [String: Value]) throws
    -> String
  {
    var out = ""
    var i = template.startIndex
    while i < template.endIndex {
      let c = template[i]
      let next = template.index(after: i)
      if (c == "{" || c == "}") && next < template.endIndex && template[next] == c {
        out.append(c)
        i = template.index(after: next)
        continue
      }
      guard c == "{" else {
        out.append(c)
        i = next
        continue
      }
      guard let close = template[next...].firstIndex(of: "}") else {
        throw NodeError.badInput(field: "path", "unclosed '{' in \(template)")
      }
      let key = String(template[next..<close])
      switch key {
      case "name": out += name
      case "node": out += node
      default:
        guard let value = params[key] else {
          throw NodeError.badInput(
            field: "path",
            "unknown placeholder {\(key)} in \(template); use {name}, {node} or a workflow parameter (\(params.keys.sorted().joined(separator: ", ")))"
          )
        }
        out += value.text
      }
      i = template.index(after: close)
    }
    return out
  }

  /// The `path` parameter substituted for this run, its folder created.
  static func outputPath(_ params: NodeParams, _ context: NodeContext) throws -> String {
    let path = try substitute(
      try params.string("path"), name: context.provenance.workflowName, node: context.node,
      params: context.provenance.params)
    let folder = (path as NSString).deletingLastPathComponent
    if !folder.isEmpty { try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
    return path
  }

  public func validate(params: NodeParams) -> [String] {
    guard let template = try? params.string("path") else { return [] }
    // The workflow's parameters are not known here; only the syntax is checked.
    var depth = 0
    for c in template.replacingOccurrences(of: "{{", with: "").replacingOccurrences(of: "}}", with: "") {
      if c == "{" { depth += 1 } else if c == "}" { depth -= 1 }
      if depth < 0 || depth > 1 { return ["path: unbalanced braces in \(template)"] }
    }
    return depth == 0 ? [] : ["path: unclosed '{' in \(template)"]
  }

  public func run(inputs: NodeInputs, params: NodeParams, context: NodeContext) throws -> [String: Artifact] {
    let image = try input(inputs, "image", Artifacts.decodeImage)
    let path = try Self.outputPath(params, context)
    let quantization: Quantization = try params.string("quantize") == "round" ? .round : .truncate
    let png = try PNGImage(
      tensor: image, quantization: quantization, text: provenanceChunks(context: context, params: params))
    do { try png.write(to: path) } catch { throw NodeError.badInput(field: "path", "cannot write \(path): \(error)") }
    context.log("wrote \(path)")
    return [:]
  }
}

/// The PNG text chunks save-image embeds. For now only `Software`; the provenance record (resolved workflow,
/// node keys, model digests) replaces this function.
func provenanceChunks(context: NodeContext, params: NodeParams) -> [PNGText] {
  [PNGText("Software", "CogFlow (\(context.provenance.engineVersion))", international: false)]
}
