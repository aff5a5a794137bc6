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
    let resolveOptions = ResolveOptions(overrides: options.sets, targets: targets, modelsDirectory: modelsDirectory)
    guard FileManager.default.fileExists(atPath: options.workflow) else {
      printError("error: workflow file '\(options.workflow)' not found")
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

  /// Parses 500, 64K, 10M, 2G, 1T (powers of 1024).
  static func parseSize(_ text: String) -> Int? {
    let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
    var body = text.uppercased()
    if body.hasSuffix("B") { body.removeLast() }
    if let last = body.last, let unit = units[last] {
      return Double(body.dropLast()).map { Int($0 * Double(unit)) }
    }
    return Int(body)
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
