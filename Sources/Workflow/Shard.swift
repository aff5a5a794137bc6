import Foundation

/// Part `index` of `count` (0-based, like Slurm array indices from `--array=0-(N-1)` and Kubernetes'
/// `JOB_COMPLETION_INDEX`).
public struct ShardSpec: Sendable, Hashable, CustomStringConvertible {
  public var index: Int
  public var count: Int

  /// More shards than this is surely a typo (Slurm's own MaxArraySize default is 1001).
  public static let maxCount = 1_000_000

  public init(index: Int, count: Int) throws {
    guard count >= 1, count <= Self.maxCount else {
      throw WorkflowError.usage("--shard: the shard count must be 1...\(Self.maxCount), found \(count)")
    }
    guard index >= 0, index < count else {
      throw WorkflowError.usage(
        "--shard \(index)/\(count): the index is out of range (shards are numbered 0...\(count - 1))")
    }
    self.index = index
    self.count = count
  }

  public var description: String { "\(index)/\(count)" }

  /// `I/N`, or `auto`: the index from `$SLURM_ARRAY_TASK_ID` or `$JOB_COMPLETION_INDEX`, the count from
  /// `$COGFLOW_SHARD_COUNT`, else `$SLURM_ARRAY_TASK_COUNT`. The explicit count comes first because a
  /// resubmitted array (`--only-failed`) has fewer tasks than the batch has shards.
  public static func parse(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment)
    throws -> ShardSpec
  {
    if text == "auto" {
      guard let indexText = environment["SLURM_ARRAY_TASK_ID"] ?? environment["JOB_COMPLETION_INDEX"] else {
        throw WorkflowError.usage(
          "--shard auto: neither $SLURM_ARRAY_TASK_ID (a Slurm array task) nor $JOB_COMPLETION_INDEX (a Kubernetes"
            + " Indexed Job) is set; give --shard I/N")
      }
      guard let countText = environment["COGFLOW_SHARD_COUNT"] ?? environment["SLURM_ARRAY_TASK_COUNT"] else {
        throw WorkflowError.usage("--shard auto: set $COGFLOW_SHARD_COUNT to the number of shards")
      }
      guard let index = Int(indexText), let count = Int(countText) else {
        throw WorkflowError.usage(
          "--shard auto: expected integers, found index '\(indexText.prefix(40))' and count '\(countText.prefix(40))'")
      }
      return try ShardSpec(index: index, count: count)
    }
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]) else {
      throw WorkflowError.usage("--shard '\(text.prefix(40))': expected I/N (e.g. 0/4) or auto")
    }
    return try ShardSpec(index: index, count: count)
  }
}

/// One unit of work that sharding hands out whole: every sink instance (an instance nothing else in the
/// workflow consumes) with the same variable bindings, e.g. the chain's end for one (prompt, seed).
public struct ShardUnit: Sendable {
  /// `name=value` pairs sorted by name, values as canonical JSON: the identity that decides the shard.
  public var bindings: String
  public var sinks: [String]
  /// SHA-256 of `bindings`.
  public var hash: String
  public var shard: Int
}

/// The deterministic partition of a resolved workflow's matrix/foreach instances.
///
/// Units (see `ShardUnit`) are sorted by the SHA-256 of their sorted bindings and dealt round-robin over the
/// shards. A unit's place depends only on the set of binding texts, so reordering matrix values, nodes or
/// parameters that no instance binds moves nothing, and shard sizes differ by at most one. A shard also runs
/// every upstream instance its units need; instances shared by several shards (a prompt's text encoding used
/// by all its seeds) are computed by whichever shard reaches them first, the others wait on the cache's key
/// lock and then read the result.
public enum Sharding {
  public static func units(of workflow: ResolvedWorkflow, count: Int) -> [ShardUnit] {
    let consumed = Set(workflow.dependents().keys)
    var byBindings: [String: [String]] = [:]
    for node in workflow.nodes where !consumed.contains(node.id) {
      let text = node.bindings.map { "\($0.name)=\($0.value.canonicalJSON)" }.sorted().joined(separator: "\n")
      byBindings[text, default: []].append(node.id)
    }
    let sorted = byBindings.map { (bindings: $0.key, sinks: $0.value, hash: SHA256.hash($0.key)) }
      .sorted { $0.hash < $1.hash }
    return sorted.enumerated().map { i, unit in
      ShardUnit(bindings: unit.bindings, sinks: unit.sinks, hash: unit.hash, shard: i % max(1, count))
    }
  }

  /// The shard's units and their ancestors, in the workflow's order.
  public static func select(_ workflow: ResolvedWorkflow, shard: ShardSpec) -> (
    workflow: ResolvedWorkflow, units: Int, totalUnits: Int
  ) {
    let all = units(of: workflow, count: shard.count)
    let mine = all.filter { $0.shard == shard.index }
    var keep = Set<String>()
    var stack = mine.flatMap(\.sinks)
    while let id = stack.popLast() {
      guard keep.insert(id).inserted, let node = workflow.node(id) else { continue }
      for source in node.inputs.values {
        if case .edge(let up, _) = source { stack.append(up) }
      }
    }
    var part = workflow
    part.nodes = workflow.nodes.filter { keep.contains($0.id) }
    part.index = Dictionary(part.nodes.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
    return (part, mine.count, all.count)
  }
}

/// What one `cogflow run` (a shard or a whole batch) did, kept beside the cache for `report` and `status`:
/// `runs/<workflow id>/<shard>-<time>-<pid>.json`. Advisory (the cache itself stays the truth for outputs),
/// written atomically, one file per attempt so a resubmitted shard does not erase what the first attempt did.
public struct RunRecord: Codable, Sendable {
  public struct NodeRecord: Codable, Sendable {
    public var outcome: String
    public var key: String?
    public var error: String?
  }
  public var workflow: String
  public var workflowID: String
  /// "0/3", or "all" for an unsharded run.
  public var shard: String
  public var host: String
  public var started: Double
  public var seconds: Double
  public var status: String
  /// `$SLURM_ARRAY_JOB_ID` / `$SLURM_ARRAY_TASK_ID` or `$JOB_COMPLETION_INDEX` when run by a scheduler.
  public var scheduler: [String: String]
  public var nodes: [String: NodeRecord]

  /// Runs of the same workflow with the same `--set` overrides share an id (the path is left out: login and
  /// compute nodes may mount the workflow at different places).
  public static func workflowID(_ workflow: ResolvedWorkflow) -> String {
    String(SHA256.hash(([workflow.name] + workflow.overrides.sorted()).joined(separator: "\u{0}")).prefix(16))
  }

  public init(
    workflow: ResolvedWorkflow, shard: ShardSpec?, result: RunResult, started: Date,
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) {
    self.workflow = workflow.name
    workflowID = Self.workflowID(workflow)
    self.shard = shard?.description ?? "all"
    host = ProcessInfo.processInfo.hostName
    self.started = started.timeIntervalSince1970
    seconds = result.seconds
    status = result.cancelled ? "cancelled" : (result.errors.isEmpty ? "ok" : "failed")
    scheduler = environment.filter {
      ["SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_ID", "JOB_COMPLETION_INDEX"].contains($0.key)
    }
    var nodes: [String: NodeRecord] = [:]
    for node in workflow.nodes {
      let prefix = "node '\(node.id)' "
      nodes[node.id] = NodeRecord(
        outcome: result.outcomes[node.id]?.rawValue ?? "not-run", key: result.keys[node.id],
        error: result.errors.first { $0.hasPrefix(prefix) })
    }
    self.nodes = nodes
  }

  static func folder(_ cache: DiskCache, workflowID: String) -> URL {
    cache.root.appendingPathComponent("runs/\(workflowID)")
  }

  /// Records kept per (workflow, shard): the newest few tell `report` and `status` enough, and a workflow rerun
  /// every day must not grow the folder without bound.
  public static let keptPerShard = 5

  /// Writes the record, then removes all but the newest `keptPerShard` of the same shard.
  public func write(to cache: DiskCache) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let data = try encoder.encode(self)
    let prefix = shard.replacingOccurrences(of: "/", with: "-of-") + "-"
    let pid = ProcessInfo.processInfo.processIdentifier
    let folder = Self.folder(cache, workflowID: workflowID)
    try cache.atomicWrite(data, to: folder.appendingPathComponent("\(prefix)\(Int(started * 1000))-\(pid).json").path)
    // Names are "<shard>-<ms>-<pid>.json": the newest have the largest ms.
    let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter {
      $0.hasPrefix(prefix) && $0.hasSuffix(".json") && Int($0.dropFirst(prefix.count).prefix { $0.isNumber }) != nil
    }
    let newestFirst = names.sorted {
      Int($0.dropFirst(prefix.count).prefix { $0.isNumber }) ?? 0 > Int(
        $1.dropFirst(prefix.count).prefix { $0.isNumber }) ?? 0
    }
    for name in newestFirst.dropFirst(Self.keptPerShard) {
      try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))
    }
  }

  /// Every record of the workflow, oldest first.
  public static func all(in cache: DiskCache, workflowID: String) -> [RunRecord] {
    let folder = folder(cache, workflowID: workflowID)
    let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
    return names.filter { $0.hasSuffix(".json") }.compactMap { name in
      FileManager.default.contents(atPath: folder.appendingPathComponent(name).path).flatMap {
        try? JSONDecoder().decode(RunRecord.self, from: $0)
      }
    }.sorted { $0.started < $1.started }
  }

  /// Every record of every workflow in the cache (for `status JOBID`), oldest first.
  public static func all(in cache: DiskCache) -> [RunRecord] {
    let base = cache.root.appendingPathComponent("runs")
    let ids = (try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? []
    return ids.flatMap { all(in: cache, workflowID: $0) }.sorted { $0.started < $1.started }
  }
}
