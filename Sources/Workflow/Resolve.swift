import Foundation

/// Where a node input comes from after resolution.
public enum InputSource: Sendable, Hashable {
  /// Output `port` of node instance `node`.
  case edge(node: String, port: String)
  /// A constant from the workflow (`$param` or `{ value: … }`), already an artifact.
  case literal(Artifact)
}

/// One node instance ready to schedule: type known, parameters typed and complete, inputs bound.
public struct ResolvedNode: Sendable {
  /// Instance id: the YAML id, plus `[var=value,…]` for matrix/foreach instances.
  public var id: String
  /// The id written in the file.
  public var baseID: String
  public var type: String
  public var spec: NodeTypeSpec
  public var params: NodeParams
  public var inputs: [String: InputSource]
  public var location: SourceLocation
  public var bindings: [(name: String, value: Value)]
}

/// A validated workflow: node instances in a topological order, ready for `plan` and `run`.
public struct ResolvedWorkflow: Sendable {
  public var file: String
  public var name: String
  public var description: String
  public var params: [String: Value]
  public var nodes: [ResolvedNode]
  public var index: [String: Int]
  /// The `--set` overrides it was resolved with.
  public var overrides: [String] = []

  public func node(_ id: String) -> ResolvedNode? { index[id].map { nodes[$0] } }

  /// Instances that consume each instance's outputs.
  public func dependents() -> [String: [String]] {
    var result: [String: [String]] = [:]
    for node in nodes {
      for source in node.inputs.values {
        if case .edge(let up, _) = source { result[up, default: []].append(node.id) }
      }
    }
    return result
  }
}

/// Options that shape resolution: overrides from `--set`, targets, and where models live.
public struct ResolveOptions: Sendable {
  /// `name=value` (a workflow parameter) or `node.param=value` (a node's parameter).
  public var overrides: [String] = []
  /// Node ids (base or instance) to build; their ancestors come along. Empty: everything.
  public var targets: [String] = []
  /// Folder that relative model paths resolve against; nil: the declaring workflow file's folder.
  public var modelsDirectory: String?
  /// At most this many node instances after matrix/foreach expansion (`--max-nodes`, `COGFLOW_MAX_NODES`).
  public var maxNodes: Int = WorkflowLimits.defaultMaxNodes
  public init(
    overrides: [String] = [], targets: [String] = [], modelsDirectory: String? = nil,
    maxNodes: Int = WorkflowLimits.defaultMaxNodes
  ) {
    self.overrides = overrides
    self.targets = targets
    self.modelsDirectory = modelsDirectory
    self.maxNodes = maxNodes
  }
}

/// Validation and expansion: every problem is collected, then thrown together as `WorkflowError.invalid`.
public struct WorkflowResolver {
  public let registry: NodeRegistry
  public let options: ResolveOptions
  private var diagnostics: [Diagnostic] = []
  /// Parameters whose value was invalid (already reported): references to them report nothing more.
  private var poisoned = Set<String>()

  public init(registry: NodeRegistry, options: ResolveOptions = ResolveOptions()) {
    self.registry = registry
    self.options = options
  }

  /// Reads, validates and expands a workflow file.
  public static func load(path: String, registry: NodeRegistry, options: ResolveOptions = ResolveOptions()) throws
    -> ResolvedWorkflow
  {
    let document = WorkflowReader.read(path: path)
    var resolver = WorkflowResolver(registry: registry, options: options)
    return try resolver.resolve(document)
  }

  private mutating func error(_ message: String, _ location: SourceLocation?) {
    diagnostics.append(Diagnostic(message, at: location))
  }

  // MARK: values

  /// Type-checks `value` against `type`, converting int → float. Returns nil (and records why) when it doesn't fit.
  private mutating func check(
    _ value: Value, as type: ParamType, min: Double?, max: Double?, what: String, at location: SourceLocation?
  ) -> Value? {
    var converted: Value
    switch (type, value) {
    case (.int, .int), (.float, .float), (.string, .string), (.bool, .bool), (.model, .string), (.file, .string):
      converted = value
    case (.float, .int(let i)):
      converted = .float(Double(i))
    case (.choice(let options), .string(let s)):
      guard options.contains(s) else {
        error("\(what): \(value) is not one of \(options.joined(separator: ", "))", location)
        return nil
      }
      converted = value
    case (.choice(let options), _):
      error("\(what): expected one of \(options.joined(separator: ", ")), found \(value.typeName) \(value)", location)
      return nil
    case (.list(let element), .list(let items)):
      var out: [Value] = []
      for item in items {
        guard let v = check(item, as: element, min: min, max: max, what: what, at: location) else { return nil }
        out.append(v)
      }
      return .list(out)
    default:
      error("\(what): expected \(type), found \(value.typeName) \(value)", location)
      return nil
    }
    if let d = converted.doubleValue {
      if d.isNaN && (min != nil || max != nil) {
        error(
          "\(what): NaN cannot be checked against the bounds \(min.map(Self.bound) ?? "-") … \(max.map(Self.bound) ?? "-")",
          location)
        return nil
      }
      if let min, d < min {
        error("\(what): \(value) is below the minimum \(Self.bound(min))", location)
        return nil
      }
      if let max, d > max {
        error("\(what): \(value) is above the maximum \(Self.bound(max))", location)
        return nil
      }
    }
    return converted
  }

  /// A bound as written: integral bounds without ".0".
  static func bound(_ d: Double) -> String {
    d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : Value.float(d).text
  }

  /// Parses a `--set` value with YAML scalar rules (so `3` is an int and `[1, 2]` a list).
  static func parseOverrideValue(_ text: String) -> Value {
    if let node = try? YAMLParser.parse(text, file: "--set"), let value = Value.from(node) { return value }
    return .string(text)
  }

  /// Substitutes `$name` (whole value) and `${name}` (inside text) from `scope`.
  private mutating func substitute(_ node: YAMLNode, scope: [String: Value], what: String) -> Value? {
    switch node.kind {
    case .scalar(let text, let quoted):
      if text.hasPrefix("$") && !text.hasPrefix("$$") && !text.hasPrefix("${") {
        let name = String(text.dropFirst())
        guard let value = scope[name] else {
          if poisoned.contains(name) { return nil }
          error(
            "\(what): unresolved reference '$\(name)' (no parameter or matrix variable of that name)", node.location)
          return nil
        }
        return value
      }
      if text.contains("$") {
        return interpolate(text, scope: scope, what: what, at: node.location).map(Value.string)
      }
      return Value.fromScalar(text, quoted: quoted)
    case .sequence(let items):
      var values: [Value] = []
      for item in items {
        guard let v = substitute(item, scope: scope, what: what) else { return nil }
        values.append(v)
      }
      return .list(values)
    case .mapping:
      error("\(what): expected a value, found a mapping", node.location)
      return nil
    }
  }

  private mutating func interpolate(_ text: String, scope: [String: Value], what: String, at location: SourceLocation)
    -> String?
  {
    var out = ""
    var rest = Substring(text)
    while let dollar = rest.firstIndex(of: "$") {
      out += rest[..<dollar]
      let after = rest[rest.index(after: dollar)...]
      if after.hasPrefix("$") {
        out += "$"
        rest = after.dropFirst()
      } else if after.hasPrefix("{"), let close = after.firstIndex(of: "}") {
        let name = String(after[after.index(after: after.startIndex)..<close])
        guard let value = scope[name] else {
          if poisoned.contains(name) { return nil }
          error("\(what): unresolved reference '${\(name)}'", location)
          return nil
        }
        out += value.text
        rest = after[after.index(after: close)...]
      } else if after.hasPrefix("{") {
        error("\(what): '${' is not closed by '}' (write $$ for a literal '$')", location)
        return nil
      } else {
        out += "$"
        rest = after
      }
    }
    return out + rest
  }

  /// Names referenced by `$name` / `${name}` anywhere in a node tree.
  static func references(in node: YAMLNode) -> Set<String> {
    switch node.kind {
    case .scalar(let text, _):
      var names = Set<String>()
      if text.hasPrefix("$") && !text.hasPrefix("$$") && !text.hasPrefix("${") {
        names.insert(String(text.dropFirst()))
      }
      var rest = Substring(text)
      while let range = rest.range(of: "${") {
        let after = rest[range.upperBound...]
        guard let close = after.firstIndex(of: "}") else { break }
        names.insert(String(after[..<close]))
        rest = after[after.index(after: close)...]
      }
      return names
    case .sequence(let items): return items.reduce(into: Set()) { $0.formUnion(references(in: $1)) }
    case .mapping(let pairs): return pairs.reduce(into: Set()) { $0.formUnion(references(in: $1.value)) }
    }
  }

  // MARK: resolution

  public mutating func resolve(_ document: WorkflowDocument) throws -> ResolvedWorkflow {
    diagnostics = document.diagnostics

    // Workflow parameters: defaults, then --set.
    var params: [String: Value] = [:]
    var nodeOverrides: [String: [(param: String, value: Value, text: String)]] = [:]
    var paramOverrides: [String: Value] = [:]
    for override in options.overrides {
      guard let eq = override.firstIndex(of: "=") else {
        error("--set '\(override)': expected name=value or node.param=value", nil)
        continue
      }
      let name = String(override[..<eq])
      let value = Self.parseOverrideValue(String(override[override.index(after: eq)...]))
      if let dot = name.firstIndex(of: ".") {
        let node = String(name[..<dot])
        let param = String(name[name.index(after: dot)...])
        nodeOverrides[node, default: []].append((param, value, override))
      } else {
        guard document.param(name) != nil || document.matrix.contains(where: { $0.name == name }) else {
          let known = document.params.map(\.name).sorted().joined(separator: ", ")
          error("--set '\(override)': the workflow has no parameter '\(name)' (parameters: \(known))", nil)
          continue
        }
        paramOverrides[name] = value
      }
    }
    for decl in document.params {
      let what = "parameter '\(decl.name)'"
      poisoned.insert(decl.name)
      if let value = paramOverrides[decl.name] {
        if let v = check(value, as: decl.type, min: decl.min, max: decl.max, what: "--set \(decl.name)", at: nil) {
          params[decl.name] = v
          poisoned.remove(decl.name)
        }
      } else if let value = decl.defaultValue {
        if let v = check(value, as: decl.type, min: decl.min, max: decl.max, what: what, at: decl.location) {
          params[decl.name] = v
          poisoned.remove(decl.name)
        }
      } else {
        error("\(what) has no default and no --set \(decl.name)=… value", decl.location)
      }
    }

    // Matrix variables (workflow-wide) and foreach variables (node-local, inherited downstream).
    var variableValues: [String: [Value]] = [:]
    var matrixNames: [String] = []
    func listValue(_ entry: (name: String, keyLocation: SourceLocation, value: YAMLNode), what: String) -> [Value]? {
      guard let value = substitute(entry.value, scope: params, what: what) else { return nil }
      guard case .list(let items) = value, !items.isEmpty else {
        error("\(what) must be a non-empty list, found \(value)", entry.value.location)
        return nil
      }
      // Instances are named by value: a value listed twice would give two instances with one id.
      var seenValues = Set<Value>()
      for item in items where !seenValues.insert(item).inserted {
        error("\(what) lists the value \(item) more than once", entry.value.location)
        return nil
      }
      if let decl = document.param(entry.name) {
        var checked: [Value] = []
        for item in items {
          guard let v = check(item, as: decl.type, min: decl.min, max: decl.max, what: what, at: entry.value.location)
          else { return nil }
          checked.append(v)
        }
        return checked
      }
      return items
    }
    for entry in document.matrix {
      if let value = paramOverrides[entry.name] {
        // --set on a matrix variable pins it to one of its values.
        if let values = listValue(entry, what: "matrix '\(entry.name)'") {
          let pinned = values.first { $0 == value || (value.doubleValue != nil && $0.doubleValue == value.doubleValue) }
          guard let pinned else {
            error(
              "--set \(entry.name)=\(value): not one of the matrix values \(Value.list(values).description)", nil)
            poisoned.insert(entry.name)
            continue
          }
          variableValues[entry.name] = [pinned]
          matrixNames.append(entry.name)
        } else {
          poisoned.insert(entry.name)
        }
        continue
      }
      if let values = listValue(entry, what: "matrix '\(entry.name)'") {
        variableValues[entry.name] = values
        matrixNames.append(entry.name)
      } else {
        poisoned.insert(entry.name)  // reported once; its references say nothing more
      }
    }

    // Expand templates into node declarations.
    var declarations: [NodeDecl] = []
    for var node in document.nodes {
      if let use = node.use {
        if let template = document.templates[use] {
          if node.type == nil {
            node.type = template.type
            node.typeLocation = template.typeLocation
          }
          let ownInputs = Set(node.inputs.map(\.port))
          node.inputs = template.inputs.filter { !ownInputs.contains($0.port) } + node.inputs
          let ownWith = Set(node.with.map(\.name))
          node.with = template.with.filter { !ownWith.contains($0.name) } + node.with
          let ownForeach = Set(node.foreach.map(\.name))
          node.foreach = template.foreach.filter { !ownForeach.contains($0.name) } + node.foreach
        } else {
          let known = document.templates.keys.sorted().joined(separator: ", ")
          error("node '\(node.id)': unknown template '\(use)' (templates: \(known))", node.useLocation)
        }
      }
      declarations.append(node)
    }
    let declIndex = Dictionary(declarations.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })

    var foreachOwner: [String: String] = [:]
    for node in declarations {
      for entry in node.foreach {
        if document.matrix.contains(where: { $0.name == entry.name }) || foreachOwner[entry.name] != nil {
          error("foreach variable '\(entry.name)' of node '\(node.id)' is already defined", entry.keyLocation)
          continue
        }
        foreachOwner[entry.name] = node.id
        if let values = listValue(entry, what: "foreach '\(entry.name)'") {
          variableValues[entry.name] = values
        } else {
          poisoned.insert(entry.name)
        }
      }
    }

    // Node types, and the upstream edges written in `in:`.
    var specs: [String: NodeTypeSpec] = [:]
    var upstream: [String: [(port: String, node: String, output: String, location: SourceLocation)]] = [:]
    for node in declarations {
      guard let typeName = node.type else {
        error("node '\(node.id)' has no 'type' (and no 'use:' template that gives one)", node.location)
        continue
      }
      guard let type = registry[typeName] else {
        error(
          "node '\(node.id)': unknown node type '\(typeName)'\(suggestion(typeName, registry.names))", node.typeLocation
        )
        continue
      }
      specs[node.id] = type.spec
      for entry in node.inputs {
        guard let text = entry.value.scalarText, !text.hasPrefix("$"), let dot = text.firstIndex(of: ".") else {
          continue
        }
        let up = String(text[..<dot])
        let port = String(text[text.index(after: dot)...])
        upstream[node.id, default: []].append((entry.port, up, port, entry.value.location))
      }
    }

    // Cycles over the written graph, each reported with its path.
    let (cycles, moreCycles) = findCycles(
      declarations.map(\.id), edges: upstream.mapValues { $0.map(\.node) }, limit: WorkflowLimits.maxCyclesListed)
    for cycle in cycles {
      let first = declarations[declIndex[cycle[0]] ?? 0]
      error("cycle: \((cycle + [cycle[0]]).joined(separator: " -> "))", first.location)
    }
    if moreCycles {
      error("cycle: more cycles than the \(WorkflowLimits.maxCyclesListed) listed; fix these and validate again", nil)
    }
    if diagnostics.contains(where: { $0.message.hasPrefix("cycle:") }) {
      throw WorkflowError.invalid(sortedDiagnostics())
    }

    // Each node's variables: its own references and foreach, plus everything its upstream nodes vary over.
    var nodeVars: [String: Set<String>] = [:]
    var order: [String] = []
    var visited = Set<String>()
    // Post-order walk with an explicit stack (a long chain must not overflow the call stack).
    func visit(_ root: String) {
      var stack: [(id: String, expanded: Bool)] = [(root, false)]
      while let (id, expanded) = stack.popLast() {
        if expanded {
          finish(id)
          continue
        }
        guard !visited.contains(id), declIndex[id] != nil else { continue }
        visited.insert(id)
        stack.append((id, true))
        for edge in (upstream[id] ?? []).reversed() where !visited.contains(edge.node) {
          stack.append((edge.node, false))
        }
      }
    }
    func finish(_ id: String) {
      guard let i = declIndex[id] else { return }
      let node = declarations[i]
      var vars = Set<String>()
      for entry in node.with { vars.formUnion(Self.references(in: entry.value)) }
      for entry in node.inputs { vars.formUnion(Self.references(in: entry.value)) }
      vars = vars.filter { variableValues[$0] != nil && (foreachOwner[$0] == nil || foreachOwner[$0] == id) }
      vars.formUnion(node.foreach.map(\.name).filter { variableValues[$0] != nil })
      for edge in upstream[id] ?? [] { vars.formUnion(nodeVars[edge.node] ?? []) }
      nodeVars[id] = vars
      order.append(id)
    }
    for node in declarations { visit(node.id) }

    // Count the instances before building any: a matrix multiplies them.
    var planned = 0
    for id in order {
      guard specs[id] != nil else { continue }
      var combos = 1
      for name in nodeVars[id] ?? [] {
        let (product, overflow) = combos.multipliedReportingOverflow(by: max(1, variableValues[name]?.count ?? 1))
        combos = overflow ? Int.max : product
      }
      let (sum, overflow) = planned.addingReportingOverflow(combos)
      planned = overflow ? Int.max : sum
    }
    if planned > options.maxNodes {
      let text = planned == Int.max ? "more than \(Int.max)" : "\(planned)"
      error(
        "the workflow expands to \(text) node instances, more than the limit of \(options.maxNodes)"
          + " (raise it with --max-nodes or COGFLOW_MAX_NODES)", nil)
      throw WorkflowError.invalid(sortedDiagnostics())
    }

    // Instances.
    var resolved: [ResolvedNode] = []
    // Instances of each node by their variables' values (upstream variables are a subset of the node's).
    var instancesOf: [String: [[Value]: String]] = [:]
    var sortedVars: [String: [String]] = [:]
    for (id, vars) in nodeVars { sortedVars[id] = vars.sorted() }
    var valueIndex: [String: [Value: Int]] = [:]
    for (name, values) in variableValues {
      valueIndex[name] = Dictionary(values.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
    }
    var usedOverrides = Set<String>()
    for id in order {
      guard let i = declIndex[id], let spec = specs[id] else { continue }
      let decl = declarations[i]
      let vars = (nodeVars[id] ?? []).sorted { a, b in
        let ia = matrixNames.firstIndex(of: a) ?? Int.max
        let ib = matrixNames.firstIndex(of: b) ?? Int.max
        return ia != ib ? ia < ib : a < b
      }
      var combos: [[(String, Value)]] = [[]]
      for name in vars {
        let values = variableValues[name] ?? []
        combos = combos.flatMap { combo in values.map { combo + [(name, $0)] } }
      }
      // Report each problem once, not once per instance.
      let before = diagnostics.count
      for combo in combos {
        if diagnostics.count > before { break }
        var scope = params
        for (name, value) in combo { scope[name] = value }
        let instanceID = Self.instanceID(id, combo, index: valueIndex)
        let bindings = Dictionary(combo, uniquingKeysWith: { a, _ in a })
        guard
          let node = resolveNode(
            decl, spec: spec, scope: scope, id: instanceID, bindings: combo, document: document,
            overrides: nodeOverrides[id] ?? [], usedOverrides: &usedOverrides,
            upstreamInstance: { up in
              guard let candidates = instancesOf[up] else { return nil }
              var key: [Value] = []
              for name in sortedVars[up] ?? [] {
                guard let value = bindings[name] else { return nil }
                key.append(value)
              }
              return candidates[key]
            },
            upstreamSpec: { specs[$0] })
        else { continue }
        resolved.append(node)
        instancesOf[id, default: [:]][(sortedVars[id] ?? []).map { bindings[$0] ?? .null }] = instanceID
      }
    }
    for (node, list) in nodeOverrides {
      for entry in list where !usedOverrides.contains(entry.text) {
        if declIndex[node] == nil {
          error("--set '\(entry.text)': there is no node '\(node)'", nil)
        } else if specs[node] != nil {
          error("--set '\(entry.text)': node '\(node)' has no parameter '\(entry.param)'", nil)
        }
      }
    }

    // Targets: keep only what they need.
    if !options.targets.isEmpty {
      var keep = Set<String>()
      var stack: [String] = []
      for target in options.targets {
        let matches = resolved.filter { $0.id == target || $0.baseID == target }.map(\.id)
        if matches.isEmpty { error("--target '\(target)': no such node", nil) }
        stack += matches
      }
      let byID = Dictionary(resolved.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
      while let id = stack.popLast() {
        guard keep.insert(id).inserted, let node = byID[id] else { continue }
        for source in node.inputs.values {
          if case .edge(let up, _) = source { stack.append(up) }
        }
      }
      resolved = resolved.filter { keep.contains($0.id) }
    }

    if !diagnostics.isEmpty { throw WorkflowError.invalid(sortedDiagnostics()) }
    let index = Dictionary(resolved.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
    return ResolvedWorkflow(
      file: document.file, name: document.name.isEmpty ? Self.defaultName(document.file) : document.name,
      description: document.description, params: params, nodes: resolved, index: index,
      overrides: options.overrides)
  }

  static func defaultName(_ file: String) -> String {
    URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
  }

  private func sortedDiagnostics() -> [Diagnostic] {
    // File order; diagnostics without a location (from --set) come last.
    var seen = Set<Diagnostic>()
    let unique = diagnostics.filter { seen.insert($0).inserted }
    return unique.enumerated().sorted { a, b in
      switch (a.element.location, b.element.location) {
      case (let la?, let lb?):
        if la.file != lb.file { return a.offset < b.offset }
        return (la.line, la.column, a.offset) < (lb.line, lb.column, b.offset)
      case (nil, nil): return a.offset < b.offset
      case (nil, _): return false
      case (_, nil): return true
      }
    }.map(\.element)
  }

  static func instanceID(_ id: String, _ combo: [(String, Value)], index: [String: [Value: Int]]) -> String {
    guard !combo.isEmpty else { return id }
    let parts = combo.map { name, value -> String in
      let text = value.text
      let simple = text.count <= 16 && text.allSatisfy { $0.isLetter || $0.isNumber || "-_.".contains($0) }
      if simple { return "\(name)=\(text)" }
      return "\(name)=#\(index[name]?[value] ?? 0)"
    }
    return "\(id)[\(parts.joined(separator: ","))]"
  }

  private mutating func resolveNode(
    _ decl: NodeDecl, spec: NodeTypeSpec, scope: [String: Value], id: String, bindings: [(String, Value)],
    document: WorkflowDocument, overrides: [(param: String, value: Value, text: String)],
    usedOverrides: inout Set<String>, upstreamInstance: (String) -> String?, upstreamSpec: (String) -> NodeTypeSpec?
  ) -> ResolvedNode? {
    let before = diagnostics.count
    var values: [String: Value] = [:]
    var models: [String: ResolvedModel] = [:]
    var files: [String: String] = [:]
    var written: [String: SourceLocation] = [:]
    for entry in decl.with {
      let what = "node '\(decl.id)' parameter '\(entry.name)'"
      if let first = written[entry.name] {
        error("node '\(decl.id)': parameter '\(entry.name)' given twice (first at \(first))", entry.keyLocation)
        continue
      }
      written[entry.name] = entry.keyLocation
      guard let param = spec.param(entry.name) else {
        let names = spec.params.map(\.name)
        error(
          "node '\(decl.id)' (\(spec.name)): unknown parameter '\(entry.name)'\(suggestion(entry.name, names))"
            + " (parameters: \(names.joined(separator: ", ")))", entry.keyLocation)
        continue
      }
      guard let raw = substitute(entry.value, scope: scope, what: what) else { continue }
      if let v = check(raw, as: param.type, min: param.min, max: param.max, what: what, at: entry.value.location) {
        values[entry.name] = v
      }
    }
    for override in overrides {
      guard let param = spec.param(override.param) else { continue }
      usedOverrides.insert(override.text)
      if let v = check(
        override.value, as: param.type, min: param.min, max: param.max, what: "--set \(decl.id).\(override.param)",
        at: nil)
      {
        values[override.param] = v
      }
    }
    for param in spec.params where values[param.name] == nil {
      if let d = param.defaultValue {
        values[param.name] = d
      } else {
        error("node '\(decl.id)' (\(spec.name)): missing required parameter '\(param.name)'", decl.location)
      }
    }
    for param in spec.params {
      guard let value = values[param.name], case .string(let text) = value else { continue }
      let location = decl.with.first { $0.name == param.name }?.value.location ?? decl.location
      switch param.type {
      case .model:
        guard let model = document.model(text) else {
          let known = document.models.map(\.name).sorted().joined(separator: ", ")
          error("node '\(decl.id)' parameter '\(param.name)': unknown model '\(text)' (models: \(known))", location)
          continue
        }
        if let resolvedModel = resolveModel(model) { models[param.name] = resolvedModel }
      case .file:
        // An empty default marks an optional file: left empty, the node gets none (and nothing enters the key).
        if text.isEmpty && param.defaultValue == .string("") { continue }
        let path = URL(fileURLWithPath: text, relativeTo: URL(fileURLWithPath: decl.baseDirectory, isDirectory: true))
          .standardizedFileURL.path
        if let kind = RegularFile.kind(path) {
          if kind.isRegular {
            files[param.name] = path
          } else {
            error(
              "node '\(decl.id)' parameter '\(param.name)': '\(text)' is \(kind.name), not a regular file", location)
          }
        } else {
          error("node '\(decl.id)' parameter '\(param.name)': file '\(text)' not found (looked at \(path))", location)
        }
      default: break
      }
    }

    var inputs: [String: InputSource] = [:]
    var connected: [String: SourceLocation] = [:]
    for entry in decl.inputs {
      if let first = connected[entry.port] {
        error("node '\(decl.id)': input '\(entry.port)' connected twice (first at \(first))", entry.keyLocation)
        continue
      }
      connected[entry.port] = entry.keyLocation
      guard let port = spec.input(entry.port) else {
        let names = spec.inputs.map(\.name)
        error(
          "node '\(decl.id)' (\(spec.name)): unknown input port '\(entry.port)'\(suggestion(entry.port, names))"
            + " (inputs: \(names.isEmpty ? "none" : names.joined(separator: ", ")))", entry.keyLocation)
        continue
      }
      let location = entry.value.location
      if let literalField = entry.value["value"] {
        guard let v = substitute(literalField, scope: scope, what: "node '\(decl.id)' input '\(port.name)'") else {
          continue
        }
        if let artifact = literal(v, port: port, node: decl.id, at: location) { inputs[port.name] = .literal(artifact) }
        continue
      }
      guard let text = entry.value.scalarText else {
        error(
          "node '\(decl.id)' input '\(port.name)': expected node.port, $param or { value: … }, found \(entry.value.kindName)",
          location)
        continue
      }
      if text.hasPrefix("$") {
        guard let v = substitute(entry.value, scope: scope, what: "node '\(decl.id)' input '\(port.name)'") else {
          continue
        }
        if let artifact = literal(v, port: port, node: decl.id, at: location) { inputs[port.name] = .literal(artifact) }
        continue
      }
      guard let dot = text.firstIndex(of: ".") else {
        error(
          "node '\(decl.id)' input '\(port.name)': '\(text)' is not node.port (write { value: … } for a constant)",
          location)
        continue
      }
      let upID = String(text[..<dot])
      let upPort = String(text[text.index(after: dot)...])
      guard let upSpec = upstreamSpec(upID) else {
        if document.nodes.contains(where: { $0.id == upID }) { continue }  // its own error is reported already
        let names = document.nodes.map(\.id)
        error(
          "node '\(decl.id)' input '\(port.name)': no node '\(upID)'\(suggestion(upID, names))", location)
        continue
      }
      guard let output = upSpec.output(upPort) else {
        let names = upSpec.outputs.map(\.name)
        error(
          "node '\(decl.id)' input '\(port.name)': node '\(upID)' (\(upSpec.name)) has no output '\(upPort)'"
            + " (outputs: \(names.joined(separator: ", ")))", location)
        continue
      }
      if port.type != "any" && output.type != port.type {
        error(
          "node '\(decl.id)' input '\(port.name)': type mismatch: '\(upID).\(upPort)' is \(output.type),"
            + " the input expects \(port.type)", location)
        continue
      }
      guard let instance = upstreamInstance(upID) else { continue }
      inputs[port.name] = .edge(node: instance, port: upPort)
    }
    for port in spec.inputs where !port.optional && inputs[port.name] == nil {
      if decl.inputs.contains(where: { $0.port == port.name }) { continue }  // already reported
      error(
        "node '\(decl.id)' (\(spec.name)): missing required input '\(port.name)' (\(port.type))", decl.location)
    }
    guard diagnostics.count == before else { return nil }
    return ResolvedNode(
      id: id, baseID: decl.id, type: spec.name, spec: spec, params: NodeParams(values, models: models, files: files),
      inputs: inputs, location: decl.location, bindings: bindings.map { (name: $0.0, value: $0.1) })
  }

  /// Literal inputs are allowed on ports of scalar types; the artifact holds the value's text.
  private mutating func literal(_ value: Value, port: PortSpec, node: String, at location: SourceLocation) -> Artifact?
  {
    let ok: Bool
    switch (port.type, value) {
    case ("text", .string), ("any", _): ok = true
    case ("int", .int), ("bool", .bool): ok = true
    case ("float", .float), ("float", .int): ok = true
    default: ok = false
    }
    guard ok else {
      error(
        "node '\(node)' input '\(port.name)': type mismatch: a constant \(value.typeName) \(value) cannot feed a"
          + " \(port.type) input", location)
      return nil
    }
    var text = value.text
    if port.type == "float", let d = value.doubleValue { text = Value.float(d).canonicalJSON }
    return Artifact(type: port.type == "any" ? "text" : port.type, bytes: Data(text.utf8))
  }

  private mutating func resolveModel(_ model: ModelDecl) -> ResolvedModel? {
    let base = options.modelsDirectory ?? model.baseDirectory
    let url =
      model.path.hasPrefix("/")
      ? URL(fileURLWithPath: model.path)
      : URL(fileURLWithPath: model.path, relativeTo: URL(fileURLWithPath: base, isDirectory: true))
    let path = url.standardizedFileURL.path
    guard let kind = RegularFile.kind(path) else {
      error("model '\(model.name)': '\(model.path)' not found (looked at \(path))", model.location)
      return nil
    }
    // Only regular files (and folders of them) are models: a FIFO or a device would never end.
    guard kind.isRegular || kind.isDirectory else {
      error(
        "model '\(model.name)': '\(model.path)' is \(kind.name); a model is a regular file or a folder", model.location)
      return nil
    }
    var files: [String] = []
    if kind.isDirectory {
      let enumerator = FileManager.default.enumerator(
        at: URL(fileURLWithPath: path), includingPropertiesForKeys: [.isRegularFileKey],
        options: [.skipsHiddenFiles])
      while let item = enumerator?.nextObject() as? URL {
        let itemPath = item.standardizedFileURL.path
        guard let itemKind = RegularFile.kind(itemPath) else { continue }
        if itemKind.isRegular {
          files.append(itemPath)
        } else if !itemKind.isDirectory {
          error(
            "model '\(model.name)': '\(itemPath)' in its folder is \(itemKind.name); a model folder holds regular files",
            model.location)
          return nil
        }
      }
      files.sort()
    } else {
      files = [path]
    }
    return ResolvedModel(name: model.name, path: path, files: files)
  }

  private func suggestion(_ name: String, _ candidates: [String]) -> String {
    // Bounded: a hint only for names up to 64 characters, against at most 10,000 candidates of similar length.
    guard name.utf8.count <= 64 else { return "" }
    let best = candidates.prefix(10_000).filter { abs($0.utf8.count - name.utf8.count) <= max(2, name.count / 3) }
      .map { ($0, editDistance(name, $0)) }
      .filter { $0.1 <= max(2, name.count / 3) && $0.1 < name.count }
      .min { $0.1 < $1.1 }
    return best.map { " (did you mean '\($0.0)'?)" } ?? ""
  }
}

/// Levenshtein distance, for "did you mean" hints.
func editDistance(_ a: String, _ b: String) -> Int {
  let a = Array(a)
  let b = Array(b)
  if a.isEmpty { return b.count }
  if b.isEmpty { return a.count }
  var previous = Array(0...b.count)
  for i in 1...a.count {
    var current = [i] + Array(repeating: 0, count: b.count)
    for j in 1...b.count {
      current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
    }
    previous = current
  }
  return previous[b.count]
}

/// Cycles in `edges` (node → nodes it depends on), each as a path, found by one depth-first search with an
/// explicit stack: one cycle per back edge, at most `limit` of them (`more` says whether there were others).
func findCycles(_ nodes: [String], edges: [String: [String]], limit: Int = Int.max) -> (
  cycles: [[String]], more: Bool
) {
  let known = Set(nodes)
  let order = Dictionary(nodes.enumerated().map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
  var state: [String: Int] = [:]  // 1 on stack, 2 done
  var position: [String: Int] = [:]  // index in `path` while on stack
  var path: [String] = []
  var frames: [(node: String, next: Int)] = []
  var cycles: [[String]] = []
  var more = false
  func push(_ n: String) {
    state[n] = 1
    position[n] = path.count
    path.append(n)
    frames.append((n, 0))
  }
  for root in nodes where state[root] == nil {
    push(root)
    while let top = frames.last {
      let out = edges[top.node] ?? []
      if top.next >= out.count {
        frames.removeLast()
        path.removeLast()
        position[top.node] = nil
        state[top.node] = 2
        continue
      }
      frames[frames.count - 1].next += 1
      let m = out[top.next]
      if state[m] == 1, let start = position[m] {
        if cycles.count >= limit {
          more = true
          continue
        }
        // Data-flow order (producer before consumer), starting at the node written first.
        var cycle = Array(path[start...].reversed())
        if let first = cycle.indices.min(by: { order[cycle[$0]] ?? 0 < order[cycle[$1]] ?? 0 }) {
          cycle = Array(cycle[first...] + cycle[..<first])
        }
        cycles.append(cycle)
      } else if state[m] == nil, known.contains(m) {
        push(m)
      }
    }
  }
  return (cycles, more)
}
