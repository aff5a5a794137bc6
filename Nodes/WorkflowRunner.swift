import Foundation
import Workflow

/// CogFlow as a library: load a workflow file (with `--set`-style overrides and a models folder), validate it
/// (the engine's checks plus each node type's own: model file kinds, sizes, input files), run it with an event
/// callback (progress included), and read any node's output artifact afterwards.
///
/// ```swift
/// let runner = try WorkflowRunner(path: "Workflows/relay-1024.yaml", overrides: ["seed=3"], modelsDirectory: dir)
/// let result = runner.run { event in if event.kind == .progress { print(event.step!, event.total!) } }
/// let image = try Artifacts.decodeImage(try runner.output("out", port: "image", of: result))
/// ```
public final class WorkflowRunner: @unchecked Sendable {
  public let workflow: ResolvedWorkflow
  public let registry: NodeRegistry
  public let pool: ModelPool
  public let cache: DiskCache?

  /// Loads and validates `path`; throws `WorkflowError.invalid` with every problem (file:line:column each).
  /// `modelsDirectory` nil: `$COGFLOW_MODELS`, else the workflow's folder. `cache` nil runs without a cache (then
  /// `output` can only read what a cache holds, so pass one to read results).
  public init(
    path: String, overrides: [String] = [], modelsDirectory: String? = nil, targets: [String] = [],
    cache: DiskCache? = nil, extraTypes: [any NodeType] = []
  ) throws {
    let pool = ModelPool()
    var registry = builtinRegistry(pool: pool)
    for type in extraTypes { registry.register(type) }
    let options = ResolveOptions(
      overrides: overrides, targets: targets,
      modelsDirectory: modelsDirectory ?? ProcessInfo.processInfo.environment["COGFLOW_MODELS"])
    let workflow = try WorkflowResolver.load(path: path, registry: registry, options: options)
    let problems = Self.validate(workflow, registry: registry)
    if !problems.isEmpty { throw WorkflowError.invalid(problems) }
    self.workflow = workflow
    self.registry = registry
    self.pool = pool
    self.cache = cache
  }

  /// The node types' own checks (`ValidatingNodeType`), one diagnostic per problem at the node's position,
  /// naming the node and the field. Equal checks of matrix instances are reported once.
  public static func validate(_ workflow: ResolvedWorkflow, registry: NodeRegistry) -> [Diagnostic] {
    var out: [Diagnostic] = []
    var seen = Set<String>()
    for node in workflow.nodes {
      guard let type = registry[node.type] as? any ValidatingNodeType else { continue }
      for problem in type.validate(params: node.params) {
        let message = "node '\(node.baseID)' (\(node.type)): \(problem)"
        if seen.insert(message).inserted { out.append(Diagnostic(message, at: node.location)) }
      }
    }
    return out
  }

  /// Runs the workflow. Models are loaded once and released after their last user; `events` sees every engine
  /// event (`.progress` per sampler step). Never throws for node failures: they are in the result.
  public func run(
    options: EngineOptions = EngineOptions(), events: @escaping @Sendable (EngineEvent) -> Void = { _ in }
  ) -> RunResult {
    pool.prepare(workflow)
    defer { pool.releaseAll() }
    let engine = Engine(workflow: workflow, registry: registry, cache: cache, options: options) { [pool] event in
      pool.observe(event)
      events(event)
    }
    return engine.run()
  }

  /// Output `port` of node `node` (an instance id, e.g. `out` or `out[seed=2]`) after `result`, read from the cache.
  public func output(_ node: String, port: String, of result: RunResult) throws -> Artifact {
    guard let key = result.keys[node] else {
      throw WorkflowError.usage(
        "node '\(node)' has no result in this run (known: \(result.keys.keys.sorted().joined(separator: ", ")))")
    }
    guard let cache, let entry = cache.lookup(key), let record = entry.outputs[port] else {
      throw WorkflowError.usage(
        "output \(node).\(port) is not in the cache (always-run node, or a run without a cache)")
    }
    return Artifact(type: record.type, bytes: try cache.getObject(record))
  }
}
