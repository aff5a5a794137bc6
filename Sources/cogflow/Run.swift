import ArgumentParser
import Dispatch
import Foundation
import Nodes
import Workflow

struct RunCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run",
    abstract: "Run a workflow; nodes whose keys are in the cache are not recomputed.",
    discussion: """
      Exit status: 0 success, 1 a node failed (independent branches still finish and are cached),
      2 the workflow did not validate, 130 cancelled by SIGINT/SIGTERM (finished nodes stay cached).
      """)
  @OptionGroup var file: WorkflowFileOptions
  @OptionGroup var cacheOptions: WorkflowCacheOptions
  @Option(help: "Build only these nodes and what they need; repeatable.") var target: [String] = []
  @Option(help: "At most N nodes at once.") var jobs: Int = max(2, ProcessInfo.processInfo.activeProcessorCount)
  @Option(help: "At most N heavy (numeric) nodes at once.") var heavyJobs: Int = 1
  @Option(help: "Write JSON-lines events to FILE, or '-' for stdout.") var events: String?
  @Flag(help: "Neither read nor write the cache.") var noCache = false
  @Flag(help: "No progress display on stderr.") var quiet = false
  @Option(help: "Run part I of N of the batch's instances (0-based), or 'auto' under Slurm/Kubernetes.") var shard:
    String?

  func run() throws {
    // One model pool per run: each model loaded once, released after its last user.
    let pool = ModelPool()
    let (loaded, registry) = try WorkflowCLI.load(file, targets: target, pool: pool)
    let (workflow, shardSpec) = try ShardCLI.select(shard, loaded)
    pool.prepare(workflow)
    let cache = noCache ? nil : try cacheOptions.open()
    var options = EngineOptions()
    options.jobs = max(1, jobs)
    options.heavyJobs = max(1, heavyJobs)
    options.useCache = !noCache

    var writer: JSONLinesEventWriter?
    if let events {
      if events == "-" {
        writer = JSONLinesEventWriter(handle: .standardOutput)
      } else {
        guard FileManager.default.createFile(atPath: events, contents: nil),
          let handle = FileHandle(forWritingAtPath: events)
        else {
          WorkflowCLI.printError("error: cannot write events file '\(events)'")
          throw ExitCode(2)
        }
        writer = JSONLinesEventWriter(handle: handle)
      }
    }
    let display = quiet ? nil : ProgressDisplay(handle: .standardError)
    let signals = WorkflowSignals(token: options.cancellation)
    defer { signals.restore() }

    let eventWriter = writer
    let engine = Engine(workflow: workflow, registry: registry, cache: cache, options: options) { event in
      pool.observe(event)
      eventWriter?.write(event)
      display?.handle(event)
    }
    let result = ShardCLI.recorded(engine, shard: shardSpec, cache: cache)

    if let cache, let budget = cache.maxBytes {
      _ = try? cache.exclusive(wait: false) { cache.collectGarbage(maxBytes: budget) }
    }
    if result.cancelled {
      WorkflowCLI.printError("cancelled: finished nodes are cached")
      throw ExitCode(130)
    }
    if !result.errors.isEmpty {
      for error in result.errors { WorkflowCLI.printError("error: \(error)") }
      throw ExitCode(1)
    }
  }
}

/// SIGINT/SIGTERM → cancel at the next progress point; a second signal exits at once.
final class WorkflowSignals {
  private var sources: [DispatchSourceSignal] = []

  init(token: CancellationToken) {
    for sig in [SIGINT, SIGTERM] {
      signal(sig, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
      source.setEventHandler {
        if token.isCancelled { exit(130) }
        token.cancel()
        WorkflowCLI.printError("cancelling: stopping at the next progress point (signal again to quit now)")
      }
      source.resume()
      sources.append(source)
    }
  }

  func restore() {
    for source in sources { source.cancel() }
    signal(SIGINT, SIG_DFL)
    signal(SIGTERM, SIG_DFL)
  }
}
