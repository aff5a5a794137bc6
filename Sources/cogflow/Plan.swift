import ArgumentParser
import Workflow

struct PlanCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "plan",
    abstract: "Per node: its key, and whether a run would take it from the cache or compute it, and why.")
  @OptionGroup var file: WorkflowFileOptions
  @OptionGroup var cacheOptions: WorkflowCacheOptions
  @Option(help: "Plan only what these nodes need; repeatable.") var target: [String] = []
  @Flag(help: "Print a JSON array of {node, type, key, status, reason}.") var json = false

  func run() throws {
    let (workflow, registry) = try WorkflowCLI.load(file, targets: target)
    let engine = Engine(workflow: workflow, registry: registry, cache: try cacheOptions.open())
    let items = engine.plan()
    if json {
      print("[" + items.map(\.json).joined(separator: ",\n ") + "]")
      return
    }
    let width = min(40, items.map(\.node.count).max() ?? 4)
    for item in items {
      let node = item.node.padding(toLength: max(width, item.node.count), withPad: " ", startingAt: 0)
      let key = item.key.map { String($0.prefix(12)) } ?? "(pending)   "
      print("\(item.status == "cached" ? "cached" : "run   ")  \(node)  \(key)  \(item.type): \(item.reason)")
    }
    let runs = items.filter { $0.status == "run" }.count
    let pending = items.contains { $0.status == "run" && $0.key == nil }
    // A node whose input is still to be computed may turn out cached (early cutoff): an upper bound then.
    print("\(items.count - runs) cached, \(pending ? "at most " : "")\(runs) to run")
  }
}
