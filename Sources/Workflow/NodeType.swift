import Foundation

/// How a node uses the machine. The scheduler runs at most `heavyJobs` (default 1) heavy nodes at once,
/// so big numeric kernels don't fight over the cores, while I/O nodes (model loading, PNG, HTTP) overlap with them.
public enum ResourceClass: String, Sendable, CaseIterable {
  /// Numeric work that uses all cores (samplers, encoders, decoders).
  case heavy
  /// Waits on disk or network; cheap on CPU.
  case io
  /// Small CPU work (arithmetic, tile plans); runs whenever a job slot is free.
  case light
}

/// Whether a node's outputs go into the cache.
public enum CachePolicy: String, Sendable {
  /// Outputs are a pure function of the key: looked up and stored.
  case cached
  /// The node has an effect outside the cache (writes a PNG): it runs every time its inputs are ready,
  /// and its outputs are not stored. Its inputs are still cached.
  case alwaysRun = "always-run"
}

/// The declared type of a parameter. `model` and `file` name files whose contents enter the node's key.
public enum ParamType: Sendable, Hashable, CustomStringConvertible {
  case int
  case float
  case string
  case bool
  /// One of a fixed set of strings.
  case choice([String])
  /// A name from the workflow's `models:` section; the node receives the resolved path.
  case model
  /// A path to an input file (relative to the workflow file); its bytes' digest enters the key.
  case file
  /// A list of values of one scalar type.
  indirect case list(ParamType)

  public var description: String {
    switch self {
    case .int: return "int"
    case .float: return "float"
    case .string: return "string"
    case .bool: return "bool"
    case .choice(let options): return "one of " + options.joined(separator: "|")
    case .model: return "model"
    case .file: return "file"
    case .list(let element): return "list of \(element)"
    }
  }
}

/// An input or output port. Types are tags compared for equality ("text", "cond", "latent", "image", …);
/// "any" on an input accepts everything.
public struct PortSpec: Sendable, Hashable {
  public var name: String
  public var type: String
  public var doc: String
  /// An optional input may be left unconnected; the run function then sees no artifact for it.
  public var optional: Bool

  public init(_ name: String, _ type: String, doc: String = "", optional: Bool = false) {
    self.name = name
    self.type = type
    self.doc = doc
    self.optional = optional
  }
}

/// A parameter a node type accepts under `with:`.
public struct ParamSpec: Sendable, Hashable {
  public var name: String
  public var type: ParamType
  /// nil means required.
  public var defaultValue: Value?
  /// Inclusive bounds for int/float parameters.
  public var min: Double?
  public var max: Double?
  public var doc: String
  /// False for settings that cannot change the outputs (timeouts, retries, a server address): they stay out of
  /// the key, so changing them never recomputes a node. `model` and `file` parameters always enter the key.
  public var affectsKey: Bool

  public init(
    _ name: String, _ type: ParamType, default defaultValue: Value? = nil, min: Double? = nil, max: Double? = nil,
    doc: String = "", affectsKey: Bool = true
  ) {
    self.name = name
    self.type = type
    self.defaultValue = defaultValue
    self.min = min
    self.max = max
    self.doc = doc
    self.affectsKey = affectsKey
  }
}

/// What a node type declares about itself: everything the validator, the key and `cogflow nodes` need.
public struct NodeTypeSpec: Sendable {
  public var name: String
  /// Bump when the implementation changes its outputs for the same inputs: it enters every key.
  public var version: Int
  public var doc: String
  public var inputs: [PortSpec]
  public var outputs: [PortSpec]
  public var params: [ParamSpec]
  public var resource: ResourceClass
  public var cachePolicy: CachePolicy

  public init(
    name: String, version: Int, doc: String = "", inputs: [PortSpec] = [], outputs: [PortSpec] = [],
    params: [ParamSpec] = [], resource: ResourceClass = .light, cachePolicy: CachePolicy = .cached
  ) {
    self.name = name
    self.version = version
    self.doc = doc
    self.inputs = inputs
    self.outputs = outputs
    self.params = params
    self.resource = resource
    self.cachePolicy = cachePolicy
  }

  /// Problems with the declaration itself (for node authors' tests): duplicate names, bad identifiers,
  /// defaults that don't fit their type, range, or choices, and min > max. Empty when the spec is sound.
  public func problems() -> [String] {
    var out: [String] = []
    func isName(_ s: String) -> Bool {
      !s.isEmpty && s.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || $0 == "_" || $0 == "-" }
    }
    if name.isEmpty { out.append("the type has no name") }
    if version < 1 { out.append("\(name): version must be at least 1") }
    for (kind, names) in [
      ("input", inputs.map(\.name)), ("output", outputs.map(\.name)), ("parameter", params.map(\.name)),
    ] {
      var seen = Set<String>()
      for n in names {
        if !seen.insert(n).inserted { out.append("\(name): duplicate \(kind) '\(n)'") }
        if !isName(n) { out.append("\(name): \(kind) '\(n)' is not a plain name") }
      }
    }
    for param in params {
      if let min = param.min, let max = param.max, min > max {
        out.append("\(name): parameter '\(param.name)' has min \(min) > max \(max)")
      }
      guard let value = param.defaultValue else { continue }
      if !Self.fits(value, param.type) {
        out.append("\(name): default \(value) of '\(param.name)' is not \(param.type)")
      } else if let d = value.doubleValue, (param.min.map { d < $0 } ?? false) || (param.max.map { d > $0 } ?? false) {
        out.append("\(name): default \(value) of '\(param.name)' is outside its range")
      }
    }
    return out
  }

  static func fits(_ value: Value, _ type: ParamType) -> Bool {
    switch (type, value) {
    case (.int, .int), (.float, .float), (.string, .string), (.bool, .bool), (.model, .string), (.file, .string):
      return true
    case (.choice(let options), .string(let s)): return options.contains(s)
    case (.list(let element), .list(let items)): return items.allSatisfy { fits($0, element) }
    default: return false
    }
  }

  public func input(_ name: String) -> PortSpec? { inputs.first { $0.name == name } }
  public func output(_ name: String) -> PortSpec? { outputs.first { $0.name == name } }
  public func param(_ name: String) -> ParamSpec? { params.first { $0.name == name } }
}

/// A node output as the cache stores it: bytes plus a type tag. The Nodes target encodes tensors and images
/// into bytes (its own format per tag); the engine only hashes, stores and hands them back.
public struct Artifact: Sendable, Hashable {
  public var type: String
  public var bytes: Data

  public init(type: String, bytes: Data) {
    self.type = type
    self.bytes = bytes
  }

  public init(text: String, type: String = "text") {
    self.init(type: type, bytes: Data(text.utf8))
  }

  public var text: String { String(decoding: bytes, as: UTF8.self) }

  /// SHA-256 of the bytes: the name of the cache object. Keys hash the type tag beside it.
  public var digest: String { SHA256.hash(bytes) }
}

/// A model named in `models:` as the engine resolved it.
public struct ResolvedModel: Sendable, Hashable {
  public var name: String
  /// Absolute path to the model file or folder.
  public var path: String
  /// Every regular file under `path` (or `path` itself), sorted: these are hashed into keys.
  public var files: [String]
}

/// The resolved inputs of one node run, by port name.
public struct NodeInputs: Sendable {
  public var artifacts: [String: Artifact]
  let node: String

  public init(_ artifacts: [String: Artifact], node: String = "") {
    self.artifacts = artifacts
    self.node = node
  }

  public subscript(port: String) -> Artifact? { artifacts[port] }

  public func required(_ port: String) throws -> Artifact {
    guard let artifact = artifacts[port] else {
      throw WorkflowError.usage("node '\(node)': input '\(port)' is not connected")
    }
    return artifact
  }
}

/// The validated parameters of one node run (defaults filled in, `$params` substituted, models resolved).
public struct NodeParams: Sendable {
  public var values: [String: Value]
  public var models: [String: ResolvedModel]
  /// `file` parameters as absolute paths.
  public var files: [String: String]

  public init(_ values: [String: Value], models: [String: ResolvedModel] = [:], files: [String: String] = [:]) {
    self.values = values
    self.models = models
    self.files = files
  }

  public subscript(name: String) -> Value? { values[name] }

  private func missing(_ name: String, _ type: String) -> WorkflowError {
    .usage("parameter '\(name)' is missing or not \(type)")
  }

  public func int(_ name: String) throws -> Int {
    guard case .int(let i) = values[name] else { throw missing(name, "an int") }
    return i
  }

  public func double(_ name: String) throws -> Double {
    guard let d = values[name]?.doubleValue else { throw missing(name, "a number") }
    return d
  }

  public func string(_ name: String) throws -> String {
    guard case .string(let s) = values[name] else { throw missing(name, "a string") }
    return s
  }

  public func bool(_ name: String) throws -> Bool {
    guard case .bool(let b) = values[name] else { throw missing(name, "a bool") }
    return b
  }

  public func model(_ name: String) throws -> ResolvedModel {
    guard let model = models[name] else { throw missing(name, "a model") }
    return model
  }

  public func file(_ name: String) throws -> String {
    guard let path = files[name] else { throw missing(name, "a file") }
    return path
  }
}

/// A model as a provenance record names it: where it was read and the digest its users' keys hold.
public struct ProvenanceModel: Sendable, Hashable {
  public var path: String
  /// `ResolvedModel.digest(fileDigest:)`: over every file's relative path and content digest.
  public var digest: String

  public init(path: String, digest: String) {
    self.path = path
    self.digest = digest
  }
}

/// Where a node's result comes from, for nodes that record it (save-image embeds it in PNG text chunks so that
/// an image can be reproduced). Everything in it is fixed by the workflow, the overrides, the graph and the
/// files, never by timing, so a rerun records the same bytes.
public struct Provenance: Sendable {
  public static let engineVersion = "cogflow-engine 1"
  public var engineVersion: String = Provenance.engineVersion
  public var workflowName: String = ""
  /// Path of the top workflow file and its text as read at the start of the run.
  public var workflowFile: String = ""
  public var workflowSource: String = ""
  /// The `--set` overrides the run was given, in order.
  public var overrides: [String] = []
  /// Workflow parameter values after defaults and `--set`.
  public var params: [String: Value] = [:]
  /// Keys of this node's ancestors (every node whose outputs reach it), by node id.
  public var nodeKeys: [String: String] = [:]
  /// Every model this node and its ancestors read, by model name.
  public var models: [String: ProvenanceModel] = [:]
  /// This node's model/file parameters → digest over their files (as in its key).
  public var fileDigests: [String: String] = [:]
  /// Nodes finished before this one whose outputs were passed on but not stored (`NodeContext.doNotCache`),
  /// by node id → the note they gave (e.g. a prompt expansion that fell back to the raw prompt).
  public var notCached: [String: String] = [:]

  public init() {}
}

/// What a running node can ask of the engine. `progress` doubles as the cancellation point.
public final class NodeContext: @unchecked Sendable {
  public let node: String
  public let type: String
  public let key: String
  private let cancellation: CancellationToken
  private let onProgress: @Sendable (Int, Int) -> Void
  private let onLog: @Sendable (String) -> Void
  private let makeProvenance: @Sendable () -> Provenance
  private let provenanceLock = NSLock()
  private var madeProvenance: Provenance?

  /// `provenance` is evaluated on first use only (the engine walks the node's ancestors for it).
  public init(
    node: String, type: String, key: String, cancellation: CancellationToken,
    provenance: @autoclosure @escaping @Sendable () -> Provenance = Provenance(),
    onProgress: @escaping @Sendable (Int, Int) -> Void = { _, _ in },
    onLog: @escaping @Sendable (String) -> Void = { _ in }
  ) {
    self.node = node
    self.type = type
    self.key = key
    self.makeProvenance = provenance
    self.cancellation = cancellation
    self.onProgress = onProgress
    self.onLog = onLog
  }

  public var provenance: Provenance {
    provenanceLock.lock()
    defer { provenanceLock.unlock() }
    if let madeProvenance { return madeProvenance }
    let made = makeProvenance()
    madeProvenance = made
    return made
  }

  public var isCancelled: Bool { cancellation.isCancelled }

  /// Throws `CancelledError` when the run is being cancelled: call it between steps.
  public func checkCancelled() throws {
    if cancellation.isCancelled { throw CancelledError() }
  }

  /// Reports `step` of `total` finished (steps count from 1) and is a cancellation point.
  public func progress(step: Int, total: Int) throws {
    try checkCancelled()
    onProgress(step, total)
  }

  /// A line for the user (a `node-log` event; shown by the display).
  public func log(_ message: String) { onLog(message) }

  private let noteLock = NSLock()
  private var uncachedNote: String?

  /// Asks the engine to pass this run's outputs downstream without storing them, so the next run computes the
  /// node again (a fallback result, a pass-through). `note` says why; it appears in the `node-done` event, in
  /// `RunResult.notCached` and in the provenance of the nodes that follow.
  public func doNotCache(_ note: String) {
    noteLock.lock()
    uncachedNote = note
    noteLock.unlock()
  }

  /// The note given to `doNotCache`, nil when the outputs may be stored.
  public var doNotCacheNote: String? {
    noteLock.lock()
    defer { noteLock.unlock() }
    return uncachedNote
  }
}

/// A node implementation. Implementations must be deterministic functions of their inputs, parameters and
/// the files they declare (model and file parameters): the cache relies on it.
public protocol NodeType: Sendable {
  var spec: NodeTypeSpec { get }
  /// Returns one artifact per declared output port, with the port's type tag.
  func run(inputs: NodeInputs, params: NodeParams, context: NodeContext) throws -> [String: Artifact]
}

/// A node type from a spec and a closure, for small nodes and tests.
public struct ClosureNodeType: NodeType {
  public let spec: NodeTypeSpec
  private let body: @Sendable (NodeInputs, NodeParams, NodeContext) throws -> [String: Artifact]

  public init(
    _ spec: NodeTypeSpec,
    run body: @escaping @Sendable (NodeInputs, NodeParams, NodeContext) throws -> [String: Artifact]
  ) {
    self.spec = spec
    self.body = body
  }

  public func run(inputs: NodeInputs, params: NodeParams, context: NodeContext) throws -> [String: Artifact] {
    try body(inputs, params, context)
  }
}

/// The node types a workflow may use, by name.
public struct NodeRegistry: Sendable {
  public private(set) var types: [String: any NodeType] = [:]

  public init(_ types: [any NodeType] = []) {
    for type in types { register(type) }
  }

  public mutating func register(_ type: any NodeType) {
    types[type.spec.name] = type
  }

  public subscript(name: String) -> (any NodeType)? { types[name] }

  public var names: [String] { types.keys.sorted() }
}

/// A flag shared by the engine and running nodes; set once by SIGINT/SIGTERM or a caller.
public final class CancellationToken: @unchecked Sendable {
  private let lock = NSLock()
  private var cancelled = false

  public init() {}

  public var isCancelled: Bool {
    lock.lock()
    defer { lock.unlock() }
    return cancelled
  }

  public func cancel() {
    lock.lock()
    cancelled = true
    lock.unlock()
  }
}
