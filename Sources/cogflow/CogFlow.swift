import ArgumentParser
import Foundation
import Tensor

@main
struct CogFlowCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cogflow",
    abstract: "CogView3 relay diffusion as cached YAML workflows on the CPU.",
    version: "0.1.0",
    subcommands: [
      RunCommand.self, PlanCommand.self, ValidateCommand.self, GraphCommand.self, NodesCommand.self,
      CacheCommand.self, InspectCommand.self, BenchCommand.self, WorkflowBenchCommand.self,
      SubmitCommand.self, StatusCommand.self, ReportCommand.self,
    ]
  )

  /// Re-executes once with OPENBLAS_CORETYPE set when OpenBLAS fell back to generic kernels.
  static func main() {
    BLASCore.reexecIfUntuned()
    do {
      var command = try parseAsRoot(nil)
      try command.run()
    } catch {
      // ArgumentParser's usage errors exit 64 (EX_USAGE); CogFlow documents exit status 2 for bad arguments.
      if exitCode(for: error) == .validationFailure {
        FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
        Foundation.exit(2)
      }
      exit(withError: error)
    }
  }
}
