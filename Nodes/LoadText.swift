import Foundation
import Workflow

/// `load-text` (→ text): line `line` (0-based) of a UTF-8 prompts file, blank lines and lines starting with `#`
/// skipped. For batch workflows: a matrix over line numbers × seeds.
public struct LoadTextNode: ValidatingNodeType {
  public init() {}

  public var spec: NodeTypeSpec {
    NodeTypeSpec(
      name: "load-text", version: 1, doc: "one prompt from a prompts file",
      outputs: [PortSpec("text", Artifacts.text)],
      params: [
        ParamSpec("path", .file, doc: "text file, one prompt per line (relative to the workflow file)"),
        ParamSpec(
          "line", .int, default: .int(0), min: 0, max: 1_000_000,
          doc: "which prompt (0-based, counting non-blank lines)"),
      ],
      resource: .io)
  }

  static func read(_ params: NodeParams) throws -> String {
    let path = try params.file("path")
    guard let data = FileManager.default.contents(atPath: path) else {
      throw NodeError.badInput(field: "path", "cannot read the prompts file \(path)")
    }
    guard let text = String(data: data, encoding: .utf8) else {
      throw NodeError.badInput(field: "path", "\(path) is not UTF-8 text")
    }
    let prompts = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
      .filter { !$0.isEmpty && !$0.hasPrefix("#") }
    let line = try params.int("line")
    guard line < prompts.count else {
      throw NodeError.badInput(
        field: "line", "\(path) has \(prompts.count) prompts, line \(line) does not exist (0-based)")
    }
    return prompts[line]
  }

  public func validate(params: NodeParams) -> [String] {
    problems { _ = try Self.read(params) }
  }

  public func run(inputs: NodeInputs, params: NodeParams, context: NodeContext) throws -> [String: Artifact] {
    ["text": Artifact(text: try Self.read(params))]
  }
}
