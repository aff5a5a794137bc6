import CYAML
import Foundation

/// A position in a workflow file; lines and columns count from 1.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
  public var file: String
  public var line: Int
  public var column: Int

  public init(file: String, line: Int, column: Int) {
    self.file = file
    self.line = line
    self.column = column
  }

  public var description: String { "\(file):\(line):\(column)" }
}

/// A YAML document as a tree whose every scalar, key, sequence and mapping remembers where it was written.
public struct YAMLNode: Sendable {
  public enum Kind: Sendable {
    /// `quoted` is true for '…' / "…" / block scalars: their text is never a number, bool or null.
    case scalar(String, quoted: Bool)
    case sequence([YAMLNode])
    /// Pairs keep the file's order; keys are scalars in a workflow, but the tree keeps any node.
    case mapping([(key: YAMLNode, value: YAMLNode)])
  }

  public var kind: Kind
  public var location: SourceLocation

  public init(_ kind: Kind, at location: SourceLocation) {
    self.kind = kind
    self.location = location
  }

  /// The text of a scalar node, nil for collections.
  public var scalarText: String? {
    if case .scalar(let text, _) = kind { return text }
    return nil
  }

  public var isNull: Bool {
    if case .scalar(let text, let quoted) = kind, !quoted {
      return text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL"
    }
    return false
  }

  /// Mapping pairs, nil for other kinds.
  public var pairs: [(key: YAMLNode, value: YAMLNode)]? {
    if case .mapping(let pairs) = kind { return pairs }
    return nil
  }

  public var items: [YAMLNode]? {
    if case .sequence(let items) = kind { return items }
    return nil
  }

  /// The value for a scalar key in a mapping (first occurrence).
  public subscript(key: String) -> YAMLNode? {
    pairs?.first { $0.key.scalarText == key }?.value
  }

  public var kindName: String {
    switch kind {
    case .scalar: return "a scalar"
    case .sequence: return "a list"
    case .mapping: return "a mapping"
    }
  }
}

/// A YAML syntax error with the position libyaml reported.
public struct YAMLError: Error, CustomStringConvertible, Sendable {
  public var location: SourceLocation
  public var message: String
  /// For a duplicate key: where the mapping that holds it starts.
  public var mapping: SourceLocation? = nil
  public var description: String { "\(location): error: \(message)" }
}

/// Parses YAML text with libyaml's event API into a `YAMLNode` tree.
///
/// Hostile input is bounded here, in the one place every workflow, include and `--set` value passes through:
/// nesting depth (`WorkflowLimits.yamlMaxDepth`, aliases count with the depth of what they name), the expanded
/// node count (`WorkflowLimits.yamlMaxNodes`, aliases counted as they are expanded), duplicate keys in any
/// mapping (an error naming both positions), and a second document (an error). Collections are built in place,
/// so parsing is linear in the input. Anchors and aliases are resolved by sharing the anchored subtree; tags are
/// ignored.
public enum YAMLParser {
  /// Parses one document; a duplicate key is thrown as an error.
  public static func parse(_ text: String, file: String) throws -> YAMLNode {
    var duplicates: [YAMLError]? = nil
    return try parse(text, file: file, duplicates: &duplicates)
  }

  /// Parses one document; with `duplicates` non-nil, duplicate keys are collected there (both pairs stay in the
  /// tree) so a validator can report them with everything else.
  public static func parse(_ text: String, file: String, duplicates: inout [YAMLError]?) throws -> YAMLNode {
    var parser = yaml_parser_t()
    guard yaml_parser_initialize(&parser) == 1 else {
      throw YAMLError(location: SourceLocation(file: file, line: 1, column: 1), message: "libyaml failed to initialize")
    }
    defer { yaml_parser_delete(&parser) }
    let bytes = Array(text.utf8)
    return try bytes.withUnsafeBufferPointer { buffer -> YAMLNode in
      yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
      var builder = Builder(file: file)
      builder.duplicates = duplicates
      defer { duplicates = builder.duplicates }
      while true {
        var event = yaml_event_t()
        guard yaml_parser_parse(&parser, &event) == 1 else {
          let mark = parser.problem_mark
          let problem = parser.problem.map { String(cString: $0) } ?? "syntax error"
          let context = parser.context.map { String(cString: $0) + ": " } ?? ""
          throw YAMLError(
            location: SourceLocation(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1),
            message: "YAML syntax: \(context)\(problem)")
        }
        defer { yaml_event_delete(&event) }
        if event.type == YAML_STREAM_END_EVENT { break }
        try builder.handle(&event)
      }
      return builder.result ?? YAMLNode(.scalar("", quoted: false), at: SourceLocation(file: file, line: 1, column: 1))
    }
  }

  public static func parse(contentsOf url: URL, displayPath: String? = nil) throws -> YAMLNode {
    var duplicates: [YAMLError]? = nil
    return try parse(contentsOf: url, displayPath: displayPath, duplicates: &duplicates)
  }

  public static func parse(contentsOf url: URL, displayPath: String? = nil, duplicates: inout [YAMLError]?) throws
    -> YAMLNode
  {
    let name = displayPath ?? url.path
    let data: Data
    do {
      data = try RegularFile.readAll(url.path, limit: WorkflowLimits.yamlMaxBytes, what: "workflow file")
    } catch let error as RegularFile.Problem {
      throw YAMLError(location: SourceLocation(file: name, line: 1, column: 1), message: error.message)
    }
    guard let text = String(data: data, encoding: .utf8) else {
      throw YAMLError(location: SourceLocation(file: name, line: 1, column: 1), message: "file is not UTF-8 text")
    }
    return try parse(text, file: name, duplicates: &duplicates)
  }

  private struct Builder {
    /// A collection being built; children are appended in place (no copy of the array per child).
    struct Frame {
      var isMapping: Bool
      var location: SourceLocation
      var anchor: String?
      var items: [YAMLNode] = []
      var pairs: [(key: YAMLNode, value: YAMLNode)] = []
      var pendingKey: YAMLNode?
      var keys: [String: SourceLocation] = [:]
      /// Expanded nodes in this subtree, and its height (an alias inside counts with what it names).
      var size = 1
      var height = 1
    }
    let file: String
    let maxDepth = WorkflowLimits.yamlMaxDepth
    let maxNodes = WorkflowLimits.yamlMaxNodes
    var stack: [Frame] = []
    var anchors: [String: (node: YAMLNode, size: Int, height: Int)] = [:]
    var result: YAMLNode?
    /// nil: throw at the first duplicate key; else collect them here.
    var duplicates: [YAMLError]?
    var documents = 0
    /// Nodes in the tree with every alias expanded, counted as they are added.
    var expanded = 0

    init(file: String) { self.file = file }

    func location(_ mark: yaml_mark_t) -> SourceLocation {
      SourceLocation(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1)
    }

    static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
      guard let pointer else { return nil }
      return String(cString: UnsafeRawPointer(pointer).assumingMemoryBound(to: CChar.self))
    }

    mutating func count(_ size: Int, height: Int, at mark: yaml_mark_t) throws {
      expanded += size
      if expanded > maxNodes {
        throw YAMLError(
          location: location(mark),
          message:
            "the document expands to more than \(maxNodes) YAML nodes (aliases count as copies of what they name);"
            + " raise COGFLOW_YAML_MAX_NODES if this is intended")
      }
      if stack.count + height > maxDepth {
        throw YAMLError(
          location: location(mark),
          message:
            "nesting deeper than \(maxDepth) levels (aliases count with what they name); raise COGFLOW_YAML_MAX_DEPTH"
            + " if this is intended")
      }
    }

    mutating func handle(_ event: inout yaml_event_t) throws {
      switch event.type {
      case YAML_DOCUMENT_START_EVENT:
        documents += 1
        if documents > 1 {
          throw YAMLError(
            location: location(event.start_mark),
            message: "a second YAML document starts here; a workflow file holds exactly one (remove the '---')")
        }
      case YAML_SCALAR_EVENT:
        try count(1, height: 1, at: event.start_mark)
        let scalar = event.data.scalar
        let text: String
        if let value = scalar.value {
          let raw = UnsafeRawBufferPointer(start: value, count: scalar.length)
          text = String(decoding: raw, as: UTF8.self)
        } else {
          text = ""
        }
        let quoted = scalar.style != YAML_PLAIN_SCALAR_STYLE
        let node = YAMLNode(.scalar(text, quoted: quoted), at: location(event.start_mark))
        if let anchor = Self.string(scalar.anchor) { anchors[anchor] = (node, 1, 1) }
        try add(node, size: 1, height: 1)
      case YAML_ALIAS_EVENT:
        let name = Self.string(event.data.alias.anchor) ?? ""
        guard let anchored = anchors[name] else {
          throw YAMLError(location: location(event.start_mark), message: "unknown alias *\(name)")
        }
        try count(anchored.size, height: anchored.height, at: event.start_mark)
        var node = anchored.node
        node.location = location(event.start_mark)
        try add(node, size: anchored.size, height: anchored.height)
      case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
        try count(1, height: 1, at: event.start_mark)
        let isMapping = event.type == YAML_MAPPING_START_EVENT
        let anchor = Self.string(
          isMapping ? event.data.mapping_start.anchor : event.data.sequence_start.anchor)
        stack.append(Frame(isMapping: isMapping, location: location(event.start_mark), anchor: anchor))
      case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
        guard let frame = stack.popLast() else { break }
        let node =
          frame.isMapping
          ? YAMLNode(.mapping(frame.pairs), at: frame.location) : YAMLNode(.sequence(frame.items), at: frame.location)
        if let anchor = frame.anchor { anchors[anchor] = (node, frame.size, frame.height) }
        try add(node, size: frame.size, height: frame.height)
      default:
        break
      }
    }

    mutating func add(_ node: YAMLNode, size: Int, height: Int) throws {
      guard !stack.isEmpty else {
        result = node
        return
      }
      let top = stack.count - 1
      stack[top].size += size
      stack[top].height = max(stack[top].height, height + 1)
      if !stack[top].isMapping {
        stack[top].items.append(node)
      } else if let key = stack[top].pendingKey {
        stack[top].pairs.append((key: key, value: node))
        stack[top].pendingKey = nil
      } else {
        if let text = node.scalarText {
          if let first = stack[top].keys[text] {
            let error = YAMLError(
              location: node.location, message: "duplicate key '\(Diagnostic.clip(text, 200))' (first at \(first))",
              mapping: stack[top].location)
            guard duplicates != nil else { throw error }
            duplicates?.append(error)
          } else {
            stack[top].keys[text] = node.location
          }
        }
        stack[top].pendingKey = node
      }
    }
  }
}
