import ArgumentParser
import Workflow

struct NodesCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "nodes", abstract: "List node types, or describe one: ports, parameters, defaults, docs.")
  @Argument(help: "A node type to describe.") var type: String?
  @Flag(help: .hidden) var toyNodes = false

  func run() throws {
    let registry = WorkflowCLI.registry(toyNodes: toyNodes)
    if let type {
      guard let node = registry[type] else {
        WorkflowCLI.printError("error: unknown node type '\(type)' (known: \(registry.names.joined(separator: ", ")))")
        throw ExitCode(2)
      }
      print(GraphExport.describe(node.spec), terminator: "")
      return
    }
    if registry.names.isEmpty { print("(no node types registered)") }
    for name in registry.names {
      let spec = registry[name]!.spec
      let ins = spec.inputs.map { "\($0.name):\($0.type)" }.joined(separator: ", ")
      let outs = spec.outputs.map { "\($0.name):\($0.type)" }.joined(separator: ", ")
      print("\(name)  (\(ins)) -> (\(outs))  \(spec.doc)")
    }
  }
}
