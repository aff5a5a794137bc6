import ArgumentParser

@main
struct CogFlowCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cogflow",
    abstract: "CogView3 relay diffusion as cached YAML workflows on the CPU.",
    version: "0.1.0",
    subcommands: [BenchCommand.self, InspectCommand.self]
  )
}
