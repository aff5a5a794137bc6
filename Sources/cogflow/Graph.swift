import ArgumentParser
import Workflow

struct GraphCommand: ParsableCommand {
  enum Format: String, ExpressibleByArgument, CaseIterable { case dot, mermaid }
  static let configuration = CommandConfiguration(
    commandName: "graph", abstract: "Print the workflow's node graph as Graphviz dot or Mermaid.")
  @OptionGroup var file: WorkflowFileOptions
  @Option(help: "dot or mermaid.") var format: Format = .dot

  func run() throws {
    let (workflow, _) = try WorkflowCLI.load(file)
    switch format {
    case .dot: print(GraphExport.dot(workflow), terminator: "")
    case .mermaid: print(GraphExport.mermaid(workflow), terminator: "")
    }
  }
}
