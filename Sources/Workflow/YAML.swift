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
  public var description: String { "\(location): error: \(message)" }
}

/// Parses YAML text with libyaml's event API into a `YAMLNode` tree (the first document).
/// Anchors and aliases are resolved by copying the anchored subtree; tags are ignored.
public enum YAMLParser {
  public static func parse(_ text: String, file: String) throws -> YAMLNode {
    var parser = yaml_parser_t()
    guard yaml_parser_initialize(&parser) == 1 else {
      throw YAMLError(location: SourceLocation(file: file, line: 1, column: 1), message: "libyaml failed to initialize")
    }
    defer { yaml_parser_delete(&parser) }
    let bytes = Array(text.utf8)
    return try bytes.withUnsafeBufferPointer { buffer -> YAMLNode in
      yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
      var builder = Builder(file: file)
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
        if let done = try builder.handle(&event) { return done }
      }
      return builder.result ?? YAMLNode(.scalar("", quoted: false), at: SourceLocation(file: file, line: 1, column: 1))
    }
  }

  public static func parse(contentsOf url: URL, displayPath: String? = nil) throws -> YAMLNode {
    let name = displayPath ?? url.path
    let data: Data
    do {
      data = try Data(contentsOf: url)
    } catch {
      throw YAMLError(
        location: SourceLocation(file: name, line: 1, column: 1),
        message: "cannot read file: \(error.localizedDescription)")
    }
    guard let text = String(data: data, encoding: .utf8) else {
      throw YAMLError(location: SourceLocation(file: name, line: 1, column: 1), message: "file is not UTF-8 text")
    }
    return try parse(text, file: name)
  }

  private struct Builder {
    enum Frame {
      case sequence([YAMLNode], SourceLocation, anchor: String?)
      case mapping([(key: YAMLNode, value: YAMLNode)], pendingKey: YAMLNode?, SourceLocation, anchor: String?)
    }
    let file: String
    var stack: [Frame] = []
    var anchors: [String: YAMLNode] = [:]
    var result: YAMLNode?

    init(file: String) { self.file = file }

    func location(_ mark: yaml_mark_t) -> SourceLocation {
      SourceLocation(file: file, line: Int(mark.line) + 1, column: Int(mark.column) + 1)
    }

    static func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
      guard let pointer else { return nil }
      return String(cString: UnsafeRawPointer(pointer).assumingMemoryBound(to: CChar.self))
    }

    /// Returns the finished root when the first document ends.
    mutating func handle(_ event: inout yaml_event_t) throws -> YAMLNode? {
      switch event.type {
      case YAML_SCALAR_EVENT:
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
        if let anchor = Self.string(scalar.anchor) { anchors[anchor] = node }
        try add(node)
      case YAML_ALIAS_EVENT:
        let name = Self.string(event.data.alias.anchor) ?? ""
        guard var node = anchors[name] else {
          throw YAMLError(location: location(event.start_mark), message: "unknown alias *\(name)")
        }
        node.location = location(event.start_mark)
        try add(node)
      case YAML_SEQUENCE_START_EVENT:
        stack.append(.sequence([], location(event.start_mark), anchor: Self.string(event.data.sequence_start.anchor)))
      case YAML_MAPPING_START_EVENT:
        stack.append(
          .mapping(
            [], pendingKey: nil, location(event.start_mark), anchor: Self.string(event.data.mapping_start.anchor)))
      case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
        guard let frame = stack.popLast() else { break }
        let node: YAMLNode
        let anchor: String?
        switch frame {
        case .sequence(let items, let loc, let a):
          node = YAMLNode(.sequence(items), at: loc)
          anchor = a
        case .mapping(let pairs, _, let loc, let a):
          node = YAMLNode(.mapping(pairs), at: loc)
          anchor = a
        }
        if let anchor { anchors[anchor] = node }
        try add(node)
      case YAML_DOCUMENT_END_EVENT:
        return result
      default:
        break
      }
      return nil
    }

    mutating func add(_ node: YAMLNode) throws {
      guard let top = stack.popLast() else {
        result = node
        return
      }
      switch top {
      case .sequence(var items, let loc, let anchor):
        items.append(node)
        stack.append(.sequence(items, loc, anchor: anchor))
      case .mapping(var pairs, let pendingKey, let loc, let anchor):
        if let key = pendingKey {
          pairs.append((key: key, value: node))
          stack.append(.mapping(pairs, pendingKey: nil, loc, anchor: anchor))
        } else {
          stack.append(.mapping(pairs, pendingKey: node, loc, anchor: anchor))
        }
      }
    }
  }
}
