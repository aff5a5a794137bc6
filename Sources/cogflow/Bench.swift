import ArgumentParser
import Tensor

struct BenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench", abstract: "Measure kernel and network speed on this machine.",
    subcommands: [BenchKernels.self])
}

struct BenchKernels: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kernels", abstract: "sgemm rate, then each kernel at CogView3 shapes.")
  @Flag(help: "Print one JSON array instead of a table.") var json = false

  func run() throws {
    print("not yet implemented")
  }
}
