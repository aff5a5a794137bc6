import ArgumentParser
import Foundation
import Workflow

/// `cogflow bench-engine`: engine overhead on a generated toy graph (no model work at all).
struct WorkflowBenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench-engine",
    abstract: "Time parse+validate, plan, and run (uncached, cold cache, fully cached) on an N-node toy graph.")
  @Option(help: "Number of nodes.") var nodes: Int = 1000
  @Option(help: "Jobs for the runs.") var jobs: Int = max(2, ProcessInfo.processInfo.activeProcessorCount)
  @Flag(help: "Print JSON.") var json = false
  @Option(help: "Instead: time hashing this file (first digest, then the remembered one).") var hashFile: String?

  static func yaml(nodes: Int) -> String {
    // Node i adds node i-1 and node i/2: a deep chain with long skip edges, so the scheduler is exercised.
    var text = "cogflow: 1\nname: bench-\(nodes)\nparams:\n  base: 1\nnodes:\n"
    text += "  n0: { type: toy.add, with: { value: $base } }\n"
    for i in 1..<max(nodes, 1) {
      text += "  n\(i): { type: toy.add, in: { a: n\(i - 1).out, b: n\(i / 2).out }, with: { value: \(i % 7) } }\n"
    }
    return text
  }

  func benchHash(_ path: String) throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cogflow-bench-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    let size = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
    var start = Date()
    let digest = try DiskCache(root: dir).fileDigest(path)
    let first = Date().timeIntervalSince(start)
    start = Date()
    _ = try DiskCache(root: dir).fileDigest(path)
    let second = Date().timeIntervalSince(start)
    print("\(digest)  \(path)")
    print(
      String(
        format: "%.1f MiB hashed in %.3f s (%.0f MiB/s); remembered digest in %.4f s", Double(size) / 1_048_576, first,
        Double(size) / 1_048_576 / first, second))
  }

  func run() throws {
    if let hashFile { return try benchHash(hashFile) }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cogflow-bench-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("bench.yaml").path
    try Self.yaml(nodes: nodes).write(toFile: path, atomically: true, encoding: .utf8)
    let registry = WorkflowCLI.registry(toyNodes: true)
    var results: [(String, Double)] = []
    func time<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
      let start = Date()
      let value = try body()
      results.append((name, Date().timeIntervalSince(start)))
      return value
    }
    let workflow = try time("parse+validate") { try WorkflowResolver.load(path: path, registry: registry) }
    let cache = try DiskCache(root: dir.appendingPathComponent("cache"))
    var options = EngineOptions()
    options.jobs = jobs
    _ = time("plan (empty cache)") { Engine(workflow: workflow, registry: registry, cache: cache).plan() }
    var uncached = options
    uncached.useCache = false
    let r0 = time("run --no-cache") {
      Engine(workflow: workflow, registry: registry, cache: nil, options: uncached).run()
    }
    let r1 = time("run (cold cache: computes and stores all)") {
      Engine(workflow: workflow, registry: registry, cache: cache, options: options).run()
    }
    let plan = time("plan (warm cache)") { Engine(workflow: workflow, registry: registry, cache: cache).plan() }
    let r2 = time("run (fully cached)") {
      Engine(workflow: workflow, registry: registry, cache: cache, options: options).run()
    }
    guard r0.succeeded, r1.succeeded, r2.succeeded, r2.count(.cached) == workflow.nodes.count,
      plan.allSatisfy({ $0.status == "cached" })
    else {
      WorkflowCLI.printError("error: bench runs did not behave as expected")
      throw ExitCode(1)
    }
    if json {
      let body = results.map { "{\"phase\":\(Value.jsonString($0.0)),\"seconds\":\(String(format: "%.4f", $0.1))}" }
      print("[" + body.joined(separator: ",") + "]")
    } else {
      print("engine bench: \(workflow.nodes.count) toy nodes, jobs \(jobs)")
      for (name, seconds) in results {
        print("  " + name.padding(toLength: 44, withPad: " ", startingAt: 0) + String(format: "%8.3f s", seconds))
      }
    }
  }
}
