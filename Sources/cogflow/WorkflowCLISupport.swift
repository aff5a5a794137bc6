import ArgumentParser
import Foundation
import Nodes
import Workflow

/// Options every workflow subcommand shares.
struct WorkflowFileOptions: ParsableArguments {
  @Argument(help: "The workflow YAML file.") var workflow: String
  @Option(name: .customLong("set"), help: "name=value (workflow parameter) or node.param=value; repeatable.")
  var sets: [String] = []
  @Option(
    help: "Folder that relative model paths resolve against (default: $COGFLOW_MODELS, else the workflow's folder).")
  var models: String?
  @Option(
    help: "At most this many node instances after matrix/foreach expansion (default: $COGFLOW_MAX_NODES, else 100000).")
  var maxNodes: Int?
  @Flag(help: .hidden) var toyNodes = false
}

struct WorkflowCacheOptions: ParsableArguments {
  @Option(help: "Cache folder (default: $COGFLOW_CACHE, else $XDG_CACHE_HOME/cogflow or ~/.cache/cogflow).")
  var cache: String?

  func open() throws -> DiskCache {
    do {
      return try DiskCache(root: DiskCache.defaultLocation(explicit: cache))
    } catch {
      WorkflowCLI.printError("\(error)")
      throw ExitCode(1)
    }
  }
}

enum WorkflowCLI {
  static func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
  }

  /// The built-in node types, plus the toy ones when asked for (`--toy-nodes` or `COGFLOW_TOY_NODES=1`).
  static func registry(toyNodes: Bool, pool: ModelPool = ModelPool()) -> NodeRegistry {
    var registry = builtinRegistry(pool: pool)
    if toyNodes || ToyNodes.enabledByEnvironment {
      for type in ToyNodes.all { registry.register(type) }
    }
    return registry
  }

  /// Loads and validates (the engine's checks, then each node type's own: model file kinds, sizes, input files);
  /// on problems prints every diagnostic to stderr and exits with status 2. The node types share `pool`.
  static func load(_ options: WorkflowFileOptions, targets: [String] = [], pool: ModelPool = ModelPool()) throws
    -> (ResolvedWorkflow, NodeRegistry)
  {
    let registry = registry(toyNodes: options.toyNodes, pool: pool)
    let modelsDirectory = options.models ?? ProcessInfo.processInfo.environment["COGFLOW_MODELS"]
    if let maxNodes = options.maxNodes, maxNodes < 1 {
      printError("error: --max-nodes must be at least 1, got \(maxNodes)")
      throw ExitCode(2)
    }
    let resolveOptions = ResolveOptions(
      overrides: options.sets, targets: targets, modelsDirectory: modelsDirectory,
      maxNodes: options.maxNodes ?? WorkflowLimits.defaultMaxNodes)
    guard let kind = RegularFile.kind(options.workflow) else {
      printError("error: workflow file '\(Diagnostic.sanitize(options.workflow))' not found")
      throw ExitCode(2)
    }
    guard kind.isRegular else {
      printError("error: workflow file '\(Diagnostic.sanitize(options.workflow))' is \(kind.name), not a regular file")
      throw ExitCode(2)
    }
    do {
      let workflow = try WorkflowResolver.load(path: options.workflow, registry: registry, options: resolveOptions)
      let problems = WorkflowRunner.validate(workflow, registry: registry)
      if !problems.isEmpty { throw WorkflowError.invalid(problems) }
      return (workflow, registry)
    } catch let WorkflowError.invalid(diagnostics) {
      for diagnostic in diagnostics { printError(diagnostic.description) }
      printError("\(diagnostics.count) error\(diagnostics.count == 1 ? "" : "s") in \(options.workflow)")
      throw ExitCode(2)
    }
  }

  /// Largest size accepted: 4 EiB.
  static let maxSize = 1 << 62

  /// Parses 500, 64K, 1.5G, 10MiB, 2TB (powers of 1024): digits with an optional fraction, then an optional
  /// unit K, M, G, T, P or E (with an optional "B" or "iB"). Nothing else: no sign, exponent, nan or inf.
  /// nil when it is not such a size or exceeds 4 EiB.
  static func parseSize(_ text: String) -> Int? {
    let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50, "E": 1 << 60]
    var body = Substring(text.uppercased())
    if body.hasSuffix("IB") {
      body = body.dropLast(2)
      guard let last = body.last, units[last] != nil else { return nil }
    } else if body.hasSuffix("B") {
      body = body.dropLast()
    }
    var unit = 1
    if let last = body.last, let u = units[last] {
      unit = u
      body = body.dropLast()
    }
    let parts = body.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
    guard let whole = parts.first, !whole.isEmpty, whole.count <= 20,
      whole.allSatisfy({ $0.isASCII && $0.isNumber })
    else { return nil }
    var fraction: Substring = ""
    if parts.count == 2 {
      fraction = parts[1]
      guard !fraction.isEmpty, fraction.count <= 20, fraction.allSatisfy({ $0.isASCII && $0.isNumber }) else {
        return nil
      }
    }
    guard let w = Int(whole) else { return nil }
    let (wholeBytes, overflow) = w.multipliedReportingOverflow(by: unit)
    guard !overflow, wholeBytes <= maxSize else { return nil }
    let fractionBytes = fraction.isEmpty ? 0 : Int((Double("0." + fraction) ?? 0) * Double(unit))
    let total = wholeBytes + fractionBytes
    return total <= maxSize ? total : nil
  }

  static func formatSize(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
      value /= 1024
      unit += 1
    }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
  }
}
