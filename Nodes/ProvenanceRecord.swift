import Foundation
import ModelIO
import Workflow

/// What save-image embeds in a PNG so that `cogflow reproduce IMAGE.png` can run the same workflow again:
/// the workflow's sources (top file and every included file, as text), the `--set` overrides, the parameter
/// values, the saving node's key and its ancestors' keys, and the models read on the way (path and digest).
///
/// Written as one iTXt chunk `cogflow:provenance` holding JSON with sorted keys, beside a tEXt `Software` chunk.
/// Every field is fixed by the workflow, the overrides, the graph and the files (the top file is named without
/// its folder, includes relative to it), so running the same thing again writes the same bytes.
public struct ProvenanceRecord: Codable, Sendable, Equatable {
  /// The PNG text keyword of the record.
  public static let keyword = "cogflow:provenance"
  /// The record layout; bump when a field changes meaning.
  public static let currentFormat = "cogflow-provenance-1"
  /// CogFlow's release version (the CLI's `--version` prints the same).
  public static let cogflowVersion = "0.1.0"
  /// Includes are followed at most this deep / this many files / this many bytes in all, when recording.
  static let maxSourceFiles = 256
  static let maxSourceBytes = 8 << 20

  public struct SourceFile: Codable, Sendable, Equatable {
    /// Relative to the top file's folder ("relay-1024.yaml", "../shared/models.yaml"); absolute when the
    /// include was written absolute.
    public var path: String
    public var text: String

    public init(path: String, text: String) {
      self.path = path
      self.text = text
    }
  }

  public struct Workflow: Codable, Sendable, Equatable {
    public var name: String
    /// The top file first, then the included files in the order they are first met.
    public var sources: [SourceFile]
  }

  public struct Node: Codable, Sendable, Equatable {
    public var id: String
    public var type: String
    public var key: String
  }

  public struct Model: Codable, Sendable, Equatable {
    public var path: String
    public var digest: String
  }

  public var format: String
  public var cogflow: String
  public var engine: String
  public var workflow: Workflow
  public var overrides: [String]
  public var params: [String: ParamValue]
  /// The node that saved the image.
  public var node: Node
  /// Keys of every node whose outputs reach `node`, by node id.
  public var ancestors: [String: String]
  /// The models `node` and its ancestors read, by model name.
  public var models: [String: Model]
  /// Ancestors whose outputs were passed on without being cached (a prompt-expand pass-through after a server
  /// failure), with the engine's note: such an image may not reproduce, and a rerun asks again. Absent (nil)
  /// when every ancestor was cached, so such records keep the fields they always had.
  public var notCached: [String: String]?

  /// The record for the node running with `context`.
  public init(context: NodeContext) throws {
    let p = context.provenance
    format = Self.currentFormat
    cogflow = Self.cogflowVersion
    engine = p.engineVersion
    workflow = Workflow(
      name: p.workflowName, sources: try Self.sources(topFile: p.workflowFile, topText: p.workflowSource))
    overrides = p.overrides
    params = p.params.mapValues(ParamValue.init)
    node = Node(id: context.node, type: context.type, key: context.key)
    ancestors = p.nodeKeys
    models = p.models.mapValues { Model(path: $0.path, digest: $0.digest) }
    notCached = p.notCached.isEmpty ? nil : p.notCached
  }

  // MARK: JSON and PNG chunks

  /// Sorted-key JSON: equal records give equal bytes.
  public func json() throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return try encoder.encode(self)
  }

  /// The tEXt `Software` and iTXt `cogflow:provenance` chunks.
  public func chunks() throws -> [PNGText] {
    [
      PNGText("Software", "CogFlow \(cogflow) (\(engine))", international: false),
      PNGText(Self.keyword, String(decoding: try json(), as: UTF8.self), international: true),
    ]
  }

  /// Parses a record; `source` names where it came from in errors.
  public static func decode(_ text: String, source: String) throws -> ProvenanceRecord {
    func bad(_ reason: String) -> ProvenanceError {
      ProvenanceError("\(source): the provenance record \(reason)")
    }
    let data = Data(text.utf8)
    guard (try? JSONSerialization.jsonObject(with: data)) is [String: Any] else {
      throw bad("is not a JSON object (the chunk is damaged or was not written by CogFlow)")
    }
    do {
      let record = try JSONDecoder().decode(ProvenanceRecord.self, from: data)
      guard record.format == currentFormat else {
        throw bad("has format '\(record.format)'; this CogFlow \(cogflowVersion) reads '\(currentFormat)'")
      }
      guard !record.workflow.sources.isEmpty else { throw bad("lists no workflow source") }
      return record
    } catch let error as DecodingError {
      throw bad(describe(error))
    }
  }

  /// The record in the PNG at `path`.
  public static func read(png path: String) throws -> ProvenanceRecord {
    let image = try PNGImage.read(path: path)
    guard let text = image.text(keyword) else {
      throw ProvenanceError(
        "\(path) has no '\(keyword)' text chunk: it was not saved by CogFlow's save-image, or the chunk was "
          + "stripped (`cogflow inspect \(path)` lists its chunks)")
    }
    return try decode(text, source: path)
  }

  private static func describe(_ error: DecodingError) -> String {
    func at(_ path: [CodingKey]) -> String {
      path.isEmpty
        ? "the top level"
        : "'"
          + path.map { $0.intValue.map(String.init) ?? $0.stringValue }
          .joined(separator: ".") + "'"
    }
    switch error {
    case .keyNotFound(let key, let context): return "lacks field '\(key.stringValue)' at \(at(context.codingPath))"
    case .typeMismatch(let type, let context): return "has a wrong type at \(at(context.codingPath)) (expected \(type))"
    case .valueNotFound(_, let context): return "has null at \(at(context.codingPath))"
    case .dataCorrupted(let context): return "is damaged at \(at(context.codingPath)): \(context.debugDescription)"
    @unknown default: return "cannot be read: \(error)"
    }
  }

  // MARK: reproducing

  /// Writes the recorded workflow files under `folder` with their recorded relative layout (the top file deep
  /// enough that every `../` stays inside) and returns the top file's path. An include written as an absolute
  /// path is not relocated: it must still hold the recorded text.
  public func materialize(in folder: String) throws -> String {
    let root = URL(fileURLWithPath: folder, isDirectory: true).standardizedFileURL
    var depth = 0
    for source in workflow.sources where !source.path.hasPrefix("/") {
      depth = max(depth, source.path.split(separator: "/").prefix { $0 == ".." }.count)
    }
    guard depth <= 64 else { throw ProvenanceError("the record's include paths climb \(depth) folders up") }
    var base = root
    for level in 0..<depth { base.appendPathComponent("up\(level)", isDirectory: true) }
    var top: String?
    for (index, source) in workflow.sources.enumerated() {
      if source.path.hasPrefix("/") {
        let current = try? String(contentsOfFile: source.path, encoding: .utf8)
        guard current == source.text else {
          throw ProvenanceError(
            "the workflow includes \(source.path) by absolute path, and that file is "
              + (current == nil ? "gone" : "changed") + " since the image was made; restore it to reproduce")
        }
        continue
      }
      let target = URL(fileURLWithPath: source.path, relativeTo: base).standardizedFileURL
      guard target.path.hasPrefix(root.path + "/"), !source.path.isEmpty else {
        throw ProvenanceError("the record names a workflow file outside its folder: '\(source.path)'")
      }
      try FileManager.default.createDirectory(
        at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
      try Data(source.text.utf8).write(to: target)
      if index == 0 { top = target.path }
    }
    guard let top else { throw ProvenanceError("the record's top workflow file has an absolute path") }
    return top
  }

  /// The models folder that resolves the workflow's relative model paths to the recorded ones, read from the
  /// rebuilt workflow at `topFile`: nil when every model is declared by absolute path. Throws when the recorded
  /// paths do not come from one folder (then the user names it with `--models DIR`).
  public func modelsDirectory(topFile: String) throws -> String? {
    let document = WorkflowReader.read(path: topFile)
    var found: String?
    for (name, model) in models.sorted(by: { $0.key < $1.key }) {
      guard let decl = document.model(name), !decl.path.hasPrefix("/") else { continue }
      let declared = URL(fileURLWithPath: decl.path, relativeTo: URL(fileURLWithPath: "/", isDirectory: true))
        .standardizedFileURL.path
      guard model.path.hasSuffix(declared), model.path.count > declared.count else {
        throw ProvenanceError(
          "model '\(name)' was read from \(model.path), which does not end in its declared path '\(decl.path)'; "
            + "pass --models DIR")
      }
      let folder = String(model.path.dropLast(declared.count))
      let directory = folder.isEmpty ? "/" : folder
      if let found, found != directory {
        throw ProvenanceError(
          "the recorded models come from two folders (\(found) and \(directory)); pass --models DIR")
      }
      found = directory
    }
    return found
  }

  /// Where each recorded model is looked for when the rebuilt workflow at `topFile` resolves against
  /// `modelsDirectory`, by model name (models the workflow no longer declares are left out).
  public func modelPaths(topFile: String, modelsDirectory: String?) -> [String: String] {
    let document = WorkflowReader.read(path: topFile)
    var out: [String: String] = [:]
    for name in models.keys {
      guard let decl = document.model(name) else { continue }
      let base = modelsDirectory ?? decl.baseDirectory
      let url =
        decl.path.hasPrefix("/")
        ? URL(fileURLWithPath: decl.path)
        : URL(fileURLWithPath: decl.path, relativeTo: URL(fileURLWithPath: base, isDirectory: true))
      out[name] = url.standardizedFileURL.path
    }
    return out
  }

  /// Each recorded model that `workflow` reads from different bytes, as a sentence naming the model, the path
  /// and both digests. `fileDigest` hashes one file (the cache's memo makes this a stat when unchanged).
  public func changedModels(in workflow: ResolvedWorkflow, fileDigest: (String) throws -> String) throws
    -> [String]
  {
    var resolved: [String: ResolvedModel] = [:]
    for node in workflow.nodes {
      for model in node.params.models.values { resolved[model.name] = model }
    }
    var out: [String] = []
    for (name, recorded) in models.sorted(by: { $0.key < $1.key }) {
      guard let model = resolved[name] else {
        out.append("model '\(name)' is not used by the rebuilt workflow (recorded at \(recorded.path))")
        continue
      }
      let digest = try model.digest(fileDigest: fileDigest)
      if digest != recorded.digest {
        out.append(
          "model '\(name)' at \(model.path) is not the one the image was made with (digest \(digest.prefix(12))…, "
            + "recorded \(recorded.digest.prefix(12))… at \(recorded.path))")
      }
    }
    return out
  }

  // MARK: sources

  /// The top file (named without its folder) and every file it includes, transitively, each once. Include
  /// entries are followed as the workflow reader does: relative to the including file's folder.
  static func sources(topFile: String, topText: String) throws -> [SourceFile] {
    // A context made outside a workflow run (tests, other embedders) names no file.
    guard !topFile.isEmpty else { return [SourceFile(path: "workflow.yaml", text: topText)] }
    let top = URL(fileURLWithPath: topFile).standardizedFileURL
    let topDir = top.deletingLastPathComponent().path
    var out = [SourceFile(path: top.lastPathComponent, text: topText)]
    var seen: Set<String> = [top.path]
    var queue: [(url: URL, text: String)] = [(top, topText)]
    var bytes = topText.utf8.count
    while !queue.isEmpty {
      let (url, text) = queue.removeFirst()
      guard let root = try? YAMLParser.parse(text, file: url.path), let include = root["include"] else { continue }
      for entry in include.items ?? [include] {
        guard let written = entry.scalarText, !written.isEmpty else { continue }
        let target = URL(
          fileURLWithPath: written, relativeTo: url.deletingLastPathComponent()
        ).standardizedFileURL
        guard seen.insert(target.path).inserted else { continue }
        guard out.count < maxSourceFiles else {
          throw ProvenanceError("more than \(maxSourceFiles) workflow files to record")
        }
        let included: String
        do {
          included = try String(contentsOfFile: target.path, encoding: .utf8)
        } catch {
          throw ProvenanceError(
            "cannot read included workflow file \(target.path) to record it: \(error)")
        }
        bytes += included.utf8.count
        guard bytes <= maxSourceBytes else {
          throw ProvenanceError("the workflow files exceed \(maxSourceBytes) bytes to record")
        }
        let path = written.hasPrefix("/") ? target.path : relativePath(target.path, from: topDir)
        out.append(SourceFile(path: path, text: included))
        queue.append((target, included))
      }
    }
    return out
  }

  /// `path` relative to the folder `base` (both absolute and standardized), with `..` where needed.
  static func relativePath(_ path: String, from base: String) -> String {
    let p = path.split(separator: "/")
    let b = base.split(separator: "/")
    var common = 0
    while common < min(p.count, b.count) && p[common] == b[common] { common += 1 }
    return (Array(repeating: "..", count: b.count - common) + p[common...].map(String.init)).joined(separator: "/")
  }
}

/// A provenance record cannot be made or read; the message names the file and what is wrong.
public struct ProvenanceError: Error, CustomStringConvertible, Sendable {
  public var description: String
  public init(_ description: String) { self.description = description }
}

/// A workflow parameter value in a provenance record: JSON null, bool, number, string or list. Non-finite
/// floats are written as the strings "NaN", "Infinity" and "-Infinity" (JSON has no such numbers).
public enum ParamValue: Codable, Sendable, Equatable {
  case null
  case bool(Bool)
  case int(Int)
  case float(Double)
  case string(String)
  case list([ParamValue])

  public init(_ value: Value) {
    switch value {
    case .null: self = .null
    case .bool(let b): self = .bool(b)
    case .int(let i): self = .int(i)
    case .float(let d):
      self = d.isFinite ? .float(d) : .string(Value.float(d).text.replacingOccurrences(of: "\"", with: ""))
    case .string(let s): self = .string(s)
    case .list(let items): self = .list(items.map(ParamValue.init))
    }
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.singleValueContainer()
    if c.decodeNil() {
      self = .null
    } else if let b = try? c.decode(Bool.self) {
      self = .bool(b)
    } else if let i = try? c.decode(Int.self) {
      self = .int(i)
    } else if let d = try? c.decode(Double.self) {
      self = .float(d)
    } else if let s = try? c.decode(String.self) {
      self = .string(s)
    } else {
      self = .list(try c.decode([ParamValue].self))
    }
  }

  public func encode(to encoder: Encoder) throws {
    var c = encoder.singleValueContainer()
    switch self {
    case .null: try c.encodeNil()
    case .bool(let b): try c.encode(b)
    case .int(let i): try c.encode(i)
    case .float(let d): try c.encode(d)
    case .string(let s): try c.encode(s)
    case .list(let items): try c.encode(items)
    }
  }
}
