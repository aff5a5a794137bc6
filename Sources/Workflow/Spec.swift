import Foundation

/// A declared workflow parameter (`params:`).
public struct ParamDecl: Sendable {
  public var name: String
  public var type: ParamType
  public var defaultValue: Value?
  public var min: Double?
  public var max: Double?
  public var doc: String
  public var location: SourceLocation
}

/// A model declared under `models:`: a path to a file or folder.
public struct ModelDecl: Sendable {
  public var name: String
  public var path: String
  public var doc: String
  public var location: SourceLocation
  /// The directory of the file that declared it: relative paths resolve here unless a models dir is given.
  public var baseDirectory: String
}

/// A node as written, before templates, parameters and matrices are applied.
public struct NodeDecl: Sendable {
  public var id: String
  public var location: SourceLocation
  public var type: String?
  public var typeLocation: SourceLocation
  /// The template it starts from (`use:`).
  public var use: String?
  public var useLocation: SourceLocation?
  public var inputs: [(port: String, keyLocation: SourceLocation, value: YAMLNode)]
  public var with: [(name: String, keyLocation: SourceLocation, value: YAMLNode)]
  public var foreach: [(name: String, keyLocation: SourceLocation, value: YAMLNode)]
  /// The directory of the file the node was written in (for `file` parameters).
  public var baseDirectory: String
}

/// One workflow file and everything it included, merged, with the problems found while reading it.
public struct WorkflowDocument: Sendable {
  public var file: String
  public var version: Int?
  public var name: String
  public var description: String
  public var params: [ParamDecl] = []
  public var models: [ModelDecl] = []
  public var templates: [String: NodeDecl] = [:]
  public var matrix: [(name: String, keyLocation: SourceLocation, value: YAMLNode)] = []
  public var nodes: [NodeDecl] = []
  public var diagnostics: [Diagnostic] = []

  public func param(_ name: String) -> ParamDecl? { params.first { $0.name == name } }
  public func model(_ name: String) -> ModelDecl? { models.first { $0.name == name } }
}

/// Reads workflow files (schema v1) into `WorkflowDocument`s; see Workflows/README.md for the schema.
public enum WorkflowReader {
  static let topLevelKeys: Set = [
    "cogflow", "name", "description", "include", "params", "models", "templates", "matrix", "nodes",
  ]
  static let nodeKeys: Set = ["type", "use", "in", "with", "foreach", "doc"]

  /// Files being read (include cycles) and every file read so far (each is read once).
  struct ReadState {
    var visiting: [String] = []
    var read = Set<String>()
  }

  public static func read(path: String) -> WorkflowDocument {
    var state = ReadState()
    let display = path
    let url = URL(fileURLWithPath: path).standardizedFileURL
    return read(url: url, display: display, visiting: &state, isRoot: true)
  }

  public static func read(text: String, file: String, baseDirectory: String) -> WorkflowDocument {
    var visiting = ReadState()
    var doc = WorkflowDocument(file: file, version: nil, name: "", description: "")
    do {
      var duplicates: [YAMLError]? = []
      let root = try YAMLParser.parse(text, file: file, duplicates: &duplicates)
      addDuplicates(duplicates ?? [], root: root, into: &doc)
      parse(root, into: &doc, baseDirectory: baseDirectory, visiting: &visiting, isRoot: true)
    } catch let error as YAMLError {
      doc.diagnostics.append(Diagnostic(error.message, at: error.location))
    } catch {
      doc.diagnostics.append(Diagnostic("\(error)", at: SourceLocation(file: file, line: 1, column: 1)))
    }
    return doc
  }

  static func read(url: URL, display: String, visiting: inout ReadState, isRoot: Bool) -> WorkflowDocument {
    var doc = WorkflowDocument(file: display, version: nil, name: "", description: "")
    visiting.read.insert(url.path)
    do {
      var duplicates: [YAMLError]? = []
      let root = try YAMLParser.parse(contentsOf: url, displayPath: display, duplicates: &duplicates)
      addDuplicates(duplicates ?? [], root: root, into: &doc)
      visiting.visiting.append(url.path)
      parse(root, into: &doc, baseDirectory: url.deletingLastPathComponent().path, visiting: &visiting, isRoot: isRoot)
      visiting.visiting.removeLast()
    } catch let error as YAMLError {
      doc.diagnostics.append(Diagnostic(error.message, at: error.location))
    } catch {
      doc.diagnostics.append(Diagnostic("\(error)", at: SourceLocation(file: display, line: 1, column: 1)))
    }
    return doc
  }

  static func parse(
    _ root: YAMLNode, into doc: inout WorkflowDocument, baseDirectory: String, visiting: inout ReadState, isRoot: Bool
  ) {
    func error(_ message: String, _ location: SourceLocation) {
      doc.diagnostics.append(Diagnostic(message, at: location))
    }
    if root.isNull {
      error("the file is empty: a workflow file is a mapping with 'cogflow: 1' and 'nodes:'", root.location)
      return
    }
    // An included path may name any file: if it is not a workflow, say so without echoing its content.
    if !isRoot, root.pairs?.contains(where: { topLevelKeys.contains($0.key.scalarText ?? "") }) != true {
      error(
        "included file is not a workflow file (it has none of the keys \(topLevelKeys.sorted().joined(separator: ", ")))",
        root.location)
      return
    }
    guard let pairs = root.pairs else {
      error("a workflow file must be a mapping with 'cogflow: 1' and 'nodes:', found \(root.kindName)", root.location)
      return
    }
    var seen: [String: SourceLocation] = [:]
    for (key, _) in pairs {
      guard let name = key.scalarText else {
        error("keys must be plain names", key.location)
        continue
      }
      if let first = seen[name] {
        error("duplicate key '\(name)' (first at \(first))", key.location)
      }
      seen[name] = key.location
      if !topLevelKeys.contains(name) {
        error(
          "unknown top-level key '\(Diagnostic.clip(name, 100))' (expected one of: \(topLevelKeys.sorted().joined(separator: ", ")))",
          key.location)
      }
    }

    if let version = root["cogflow"] {
      if case .int(let v) = Value.from(version) {
        doc.version = v
        if v != 1 { error("unsupported schema version \(v): this cogflow reads version 1", version.location) }
      } else {
        error("'cogflow' must be the schema version number 1", version.location)
      }
    } else if isRoot {
      error("missing 'cogflow: 1' (the schema version)", root.location)
    }
    if let name = root["name"] {
      if let text = name.scalarText { doc.name = text } else { error("'name' must be text", name.location) }
    }
    if let description = root["description"] {
      if let text = description.scalarText {
        doc.description = text
      } else {
        error("'description' must be text", description.location)
      }
    }

    // Included files come first so that this file's params, models and templates override theirs.
    if let include = root["include"] {
      let entries: [YAMLNode] = include.items ?? [include]
      for entry in entries {
        guard let rel = entry.scalarText, !rel.isEmpty else {
          error("'include' takes a file path or a list of paths", entry.location)
          continue
        }
        let url = URL(fileURLWithPath: rel, relativeTo: URL(fileURLWithPath: baseDirectory, isDirectory: true))
          .standardizedFileURL
        if visiting.visiting.contains(url.path) {
          error("include cycle: '\(rel)' is already being read", entry.location)
          continue
        }
        // Reading an include recurses: the nesting is bounded (a chain of distinct files cannot overflow the stack).
        guard visiting.visiting.count < WorkflowLimits.maxIncludeDepth else {
          error(
            "includes nested deeper than \(WorkflowLimits.maxIncludeDepth) files; '\(rel)' is not read", entry.location)
          continue
        }
        // Each file is read and merged once, however often it is included (a diamond shares it).
        if visiting.read.contains(url.path) { continue }
        guard let kind = RegularFile.kind(url.path) else {
          error("included file '\(rel)' not found (looked at \(url.path))", entry.location)
          continue
        }
        guard kind.isRegular else {
          error("included file '\(rel)' is \(kind.name), not a regular file", entry.location)
          continue
        }
        let display = relativeDisplay(url.path)
        let sub = read(url: url, display: display, visiting: &visiting, isRoot: false)
        merge(sub, into: &doc)
      }
    }

    // Name sets keep overriding an included declaration linear in the number of declarations.
    if let params = root["params"] {
      if let pairs = params.pairs {
        let included = Set(doc.params.map(\.name))
        for (key, value) in pairs {
          guard let name = key.scalarText else { continue }
          if let decl = parseParam(name: name, key: key, value: value, doc: &doc) {
            if included.contains(name) { doc.params.removeAll { $0.name == name } }
            doc.params.append(decl)
          }
        }
      } else if !params.isNull {
        error("'params' must be a mapping of name: value", params.location)
      }
    }

    if let models = root["models"] {
      if let pairs = models.pairs {
        let included = Set(doc.models.map(\.name))
        for (key, value) in pairs {
          guard let name = key.scalarText else { continue }
          var path: String?
          var docText = ""
          if let text = value.scalarText {
            path = text
          } else if let fields = value.pairs {
            path = value["path"]?.scalarText
            docText = value["doc"]?.scalarText ?? ""
            for (k, _) in fields where !["path", "doc"].contains(k.scalarText ?? "") {
              error("unknown model field '\(k.scalarText ?? "?")' (expected path, doc)", k.location)
            }
          }
          guard let path, !path.isEmpty else {
            error("model '\(name)' needs a path (name: path or name: { path: … })", value.location)
            continue
          }
          if included.contains(name) { doc.models.removeAll { $0.name == name } }
          doc.models.append(
            ModelDecl(name: name, path: path, doc: docText, location: value.location, baseDirectory: baseDirectory))
        }
      } else if !models.isNull {
        error("'models' must be a mapping of name: path", models.location)
      }
    }

    if let templates = root["templates"] {
      if let pairs = templates.pairs {
        for (key, value) in pairs {
          guard let name = key.scalarText else { continue }
          if let node = parseNode(id: name, key: key, value: value, baseDirectory: baseDirectory, doc: &doc) {
            doc.templates[name] = node
          }
        }
      } else if !templates.isNull {
        error("'templates' must be a mapping of name: node", templates.location)
      }
    }

    if let matrix = root["matrix"] {
      if let pairs = matrix.pairs {
        let included = Set(doc.matrix.map(\.name))
        for (key, value) in pairs {
          guard let name = key.scalarText else { continue }
          if included.contains(name) { doc.matrix.removeAll { $0.name == name } }
          doc.matrix.append((name: name, keyLocation: key.location, value: value))
        }
      } else {
        error("'matrix' must be a mapping of variable: list", matrix.location)
      }
    }

    if let nodes = root["nodes"] {
      if let pairs = nodes.pairs {
        var firstByID = Dictionary(doc.nodes.map { ($0.id, $0.location) }, uniquingKeysWith: { a, _ in a })
        for (key, value) in pairs {
          guard let id = key.scalarText else {
            error("node ids must be plain names", key.location)
            continue
          }
          if let node = parseNode(id: id, key: key, value: value, baseDirectory: baseDirectory, doc: &doc) {
            if let first = firstByID[id] {
              error("duplicate node id '\(id)' (first defined at \(first))", key.location)
              continue
            }
            firstByID[id] = node.location
            doc.nodes.append(node)
          }
        }
      } else if !nodes.isNull {
        error("'nodes' must be a mapping of id: node", nodes.location)
      }
    } else if isRoot && root["include"] == nil {
      error("missing 'nodes:'", root.location)
    }
  }

  /// Duplicate keys from the YAML reader, except in mappings whose duplicates get a more specific message later
  /// (the top level, `nodes:`, and a node's or template's `in:` / `with:`).
  static func addDuplicates(_ duplicates: [YAMLError], root: YAMLNode, into doc: inout WorkflowDocument) {
    guard !duplicates.isEmpty else { return }
    var specific: Set<SourceLocation> = [root.location]
    for section in ["nodes", "templates"] {
      guard let entries = root[section] else { continue }
      if section == "nodes" { specific.insert(entries.location) }
      for (_, node) in entries.pairs ?? [] {
        for field in ["in", "with"] { if let m = node[field] { specific.insert(m.location) } }
      }
    }
    for duplicate in duplicates where !specific.contains(duplicate.mapping ?? duplicate.location) {
      doc.diagnostics.append(Diagnostic(duplicate.message, at: duplicate.location))
    }
  }

  static func merge(_ sub: WorkflowDocument, into doc: inout WorkflowDocument) {
    doc.diagnostics += sub.diagnostics
    let newParams = Set(sub.params.map(\.name))
    doc.params.removeAll { newParams.contains($0.name) }
    doc.params += sub.params
    let newModels = Set(sub.models.map(\.name))
    doc.models.removeAll { newModels.contains($0.name) }
    doc.models += sub.models
    doc.templates.merge(sub.templates) { _, new in new }
    let newMatrix = Set(sub.matrix.map(\.name))
    doc.matrix.removeAll { newMatrix.contains($0.name) }
    doc.matrix += sub.matrix
    var firstByID = Dictionary(doc.nodes.map { ($0.id, $0.location) }, uniquingKeysWith: { a, _ in a })
    for node in sub.nodes {
      if let first = firstByID[node.id] {
        doc.diagnostics.append(
          Diagnostic("duplicate node id '\(node.id)' (first defined at \(first))", at: node.location))
        continue
      }
      firstByID[node.id] = node.location
      doc.nodes.append(node)
    }
  }

  static func relativeDisplay(_ path: String) -> String {
    let cwd = FileManager.default.currentDirectoryPath
    if path.hasPrefix(cwd + "/") { return String(path.dropFirst(cwd.count + 1)) }
    return path
  }

  static func parseParamType(_ node: YAMLNode, doc: inout WorkflowDocument) -> ParamType? {
    guard let text = node.scalarText else {
      doc.diagnostics.append(Diagnostic("a parameter type must be a name", at: node.location))
      return nil
    }
    switch text {
    case "int": return .int
    case "float": return .float
    case "string", "text": return .string
    case "bool": return .bool
    case "model": return .model
    case "file": return .file
    case "list", "list[string]": return .list(.string)
    case "list[int]": return .list(.int)
    case "list[float]": return .list(.float)
    case "list[bool]": return .list(.bool)
    default:
      doc.diagnostics.append(
        Diagnostic(
          "unknown parameter type '\(text)' (expected int, float, string, bool, model, file, list[int|float|string|bool])",
          at: node.location))
      return nil
    }
  }

  static func inferType(_ value: Value) -> ParamType {
    switch value {
    case .int: return .int
    case .float: return .float
    case .bool: return .bool
    case .list(let items): return .list(items.first.map(inferType) ?? .string)
    default: return .string
    }
  }

  static func parseParam(name: String, key: YAMLNode, value: YAMLNode, doc: inout WorkflowDocument) -> ParamDecl? {
    if value.pairs == nil {
      guard let v = Value.from(value) else { return nil }
      return ParamDecl(
        name: name, type: inferType(v), defaultValue: v, min: nil, max: nil, doc: "", location: key.location)
    }
    var type: ParamType?
    var defaultValue: Value?
    var min: Double?
    var max: Double?
    var docText = ""
    var choices: [String]?
    for (k, v) in value.pairs ?? [] {
      switch k.scalarText ?? "" {
      case "type": type = parseParamType(v, doc: &doc)
      case "default": defaultValue = Value.from(v)
      case "min", "max":
        guard let bound = Value.from(v)?.doubleValue, !bound.isNaN else {
          doc.diagnostics.append(
            Diagnostic(
              "'\(k.scalarText ?? "")' of parameter '\(name)' must be a number, found \(v.scalarText.map { "'\(Diagnostic.clip($0, 100))'" } ?? v.kindName)",
              at: v.location))
          continue
        }
        if k.scalarText == "min" { min = bound } else { max = bound }
      case "doc": docText = v.scalarText ?? ""
      case "enum":
        if case .list(let items) = Value.from(v) ?? .null {
          choices = items.map(\.text)
        } else {
          doc.diagnostics.append(Diagnostic("'enum' must be a list", at: v.location))
        }
      default:
        doc.diagnostics.append(
          Diagnostic(
            "unknown field '\(k.scalarText ?? "?")' in parameter '\(name)' (expected type, default, min, max, enum, doc)",
            at: k.location))
      }
    }
    if let choices { type = .choice(choices) }
    if type == nil, let defaultValue { type = inferType(defaultValue) }
    guard let type else {
      doc.diagnostics.append(Diagnostic("parameter '\(name)' needs a 'type' or a 'default'", at: key.location))
      return nil
    }
    return ParamDecl(
      name: name, type: type, defaultValue: defaultValue, min: min, max: max, doc: docText, location: key.location)
  }

  static func parseNode(id: String, key: YAMLNode, value: YAMLNode, baseDirectory: String, doc: inout WorkflowDocument)
    -> NodeDecl?
  {
    guard let fields = value.pairs else {
      doc.diagnostics.append(Diagnostic("node '\(id)' must be a mapping with 'type:'", at: value.location))
      return nil
    }
    var node = NodeDecl(
      id: id, location: key.location, type: nil, typeLocation: key.location, use: nil, useLocation: nil, inputs: [],
      with: [], foreach: [], baseDirectory: baseDirectory)
    if !isIdentifier(id) {
      doc.diagnostics.append(
        Diagnostic("node id '\(id)' must be letters, digits, '_' or '-' (it is used as node.port)", at: key.location))
    }
    for (k, v) in fields {
      let field = k.scalarText ?? ""
      switch field {
      case "type":
        node.type = v.scalarText
        node.typeLocation = v.location
      case "use":
        node.use = v.scalarText
        node.useLocation = v.location
      case "doc": break
      case "in", "with", "foreach":
        guard let entries = v.pairs else {
          if !v.isNull {
            doc.diagnostics.append(Diagnostic("'\(field)' of node '\(id)' must be a mapping", at: v.location))
          }
          continue
        }
        for (ek, ev) in entries {
          guard let name = ek.scalarText else { continue }
          let entry = (name, ek.location, ev)
          switch field {
          case "in": node.inputs.append(entry)
          case "with": node.with.append(entry)
          default: node.foreach.append(entry)
          }
        }
      default:
        doc.diagnostics.append(
          Diagnostic(
            "unknown field '\(field)' in node '\(id)' (expected \(nodeKeys.sorted().joined(separator: ", ")))",
            at: k.location))
      }
    }
    return node
  }

  static func isIdentifier(_ s: String) -> Bool {
    !s.isEmpty && s.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || $0 == "_" || $0 == "-" }
  }
}
