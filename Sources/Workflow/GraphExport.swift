import Foundation

/// Text renderings of a resolved workflow's graph for `cogflow graph`.
public enum GraphExport {
  static func dotID(_ s: String) -> String { Value.jsonString(s) }

  /// Graphviz: one box per node (id and type), one edge per input labelled `output → input`.
  public static func dot(_ workflow: ResolvedWorkflow) -> String {
    var lines = ["digraph \(dotID(workflow.name)) {", "  rankdir=LR;", "  node [shape=box, fontname=\"Helvetica\"];"]
    for node in workflow.nodes {
      lines.append("  \(dotID(node.id)) [label=\(dotID("\(node.id)\n\(node.type)"))];")
    }
    for node in workflow.nodes {
      for (port, source) in node.inputs.sorted(by: { $0.key < $1.key }) {
        if case .edge(let up, let upPort) = source {
          lines.append("  \(dotID(up)) -> \(dotID(node.id)) [label=\(dotID("\(upPort) → \(port)"))];")
        }
      }
    }
    lines.append("}")
    return lines.joined(separator: "\n") + "\n"
  }

  /// Mermaid flowchart; ids are replaced by n0, n1, … because Mermaid ids can't hold `[` or `=`.
  public static func mermaid(_ workflow: ResolvedWorkflow) -> String {
    var ids: [String: String] = [:]
    for (i, node) in workflow.nodes.enumerated() { ids[node.id] = "n\(i)" }
    func label(_ s: String) -> String { s.replacingOccurrences(of: "\"", with: "#quot;") }
    var lines = ["flowchart LR"]
    for node in workflow.nodes {
      lines.append("  \(ids[node.id]!)[\"\(label(node.id))<br/>\(label(node.type))\"]")
    }
    for node in workflow.nodes {
      for (port, source) in node.inputs.sorted(by: { $0.key < $1.key }) {
        if case .edge(let up, let upPort) = source, let from = ids[up] {
          lines.append("  \(from) -->|\"\(label(upPort)) → \(label(port))\"| \(ids[node.id]!)")
        }
      }
    }
    return lines.joined(separator: "\n") + "\n"
  }

  /// `cogflow nodes TYPE`: ports, parameters with defaults/ranges, resource class and docs.
  public static func describe(_ spec: NodeTypeSpec) -> String {
    var out = "\(spec.name) (version \(spec.version), \(spec.resource.rawValue)"
    out += spec.cachePolicy == .alwaysRun ? ", always runs)\n" : ")\n"
    if !spec.doc.isEmpty { out += "  \(spec.doc)\n" }
    out += "  inputs:\n"
    if spec.inputs.isEmpty { out += "    (none)\n" }
    for port in spec.inputs {
      out +=
        "    \(port.name): \(port.type)\(port.optional ? " (optional)" : "")\(port.doc.isEmpty ? "" : " — \(port.doc)")\n"
    }
    out += "  outputs:\n"
    if spec.outputs.isEmpty { out += "    (none)\n" }
    for port in spec.outputs {
      out += "    \(port.name): \(port.type)\(port.doc.isEmpty ? "" : " — \(port.doc)")\n"
    }
    out += "  parameters:\n"
    if spec.params.isEmpty { out += "    (none)\n" }
    for param in spec.params {
      var line = "    \(param.name): \(param.type)"
      if let d = param.defaultValue { line += " = \(d)" } else { line += " (required)" }
      if param.min != nil || param.max != nil {
        line +=
          " in [\(param.min.map(WorkflowResolver.bound) ?? "-∞"), \(param.max.map(WorkflowResolver.bound) ?? "∞")]"
      }
      if !param.doc.isEmpty { line += " — \(param.doc)" }
      out += line + "\n"
    }
    return out
  }
}
