import ArgumentParser
import Workflow

struct ValidateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "validate",
    abstract: "Check a workflow without running it: every error at once, each with file:line:column.")
  @OptionGroup var file: WorkflowFileOptions

  func run() throws {
    let (workflow, _) = try WorkflowCLI.load(file)
    print("\(file.workflow): ok (\(workflow.nodes.count) node\(workflow.nodes.count == 1 ? "" : "s"))")
  }
}
