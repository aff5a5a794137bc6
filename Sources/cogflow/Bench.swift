import ArgumentParser
import Foundation
import Tensor

struct BenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench", abstract: "Measure kernel and network speed on this machine.",
    subcommands: [BenchKernels.self, BenchUNet.self, BenchVAE.self, BenchT5.self])
}

struct BenchKernels: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kernels",
    abstract: "sgemm rate, then each kernel at CogView3 shapes.",
    discussion: """
      Compute-bound rows report GFLOP/s and their ratio to the sgemm row; memory-bound rows (GroupNorm, \
      GEGLU) report GB/s (bytes read + written) and their ratio to the parallel copy row of the same run. \
      Numbers are only meaningful on an otherwise idle machine. When OPENBLAS_CORETYPE is set, it is first \
      measured against OpenBLAS' own choice (small sgemm in two child processes) and a note says what it costs.
      """)
  @Flag(help: "Print one JSON array instead of a table.") var json = false
  @Option(help: "Seconds spent on each row (best call is reported).") var seconds: Double = 0.5
  @Option(help: "Divide the spatial and token sizes by this factor (1 = CogView3 shapes).") var shrink: Int = 1
  @Option(help: "Threads for GEMM and the Dispatch kernels (default: all cores or $COGFLOW_THREADS).")
  var threads: Int?
  @Option(help: ArgumentHelp("Override Ops.convColumnBytes (im2col chunk size) for tuning.", visibility: .hidden))
  var convColumnBytes: Int?
  @Option(
    help: ArgumentHelp("Override Ops.attentionTileBytes (per-worker score tile) for tuning.", visibility: .hidden))
  var attentionTileBytes: Int?
  @Option(
    help: ArgumentHelp("Only rows whose name contains this text (sgemm and copy always run).", visibility: .hidden))
  var only: String?
  @Flag(
    help: ArgumentHelp("Time by process CPU time per thread (for tuning on a loaded machine).", visibility: .hidden))
  var cpuTime = false
  @Flag(help: ArgumentHelp("Print the OpenBLAS core and sgemm rate as JSON, nothing else.", visibility: .hidden))
  var sgemmProbe = false

  func validate() throws {
    guard seconds > 0, seconds <= 60 else { throw ValidationError("--seconds must be in (0, 60]") }
    guard shrink >= 1 else { throw ValidationError("--shrink must be at least 1") }
    if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
  }

  func run() throws {
    if let threads { Parallel.threadCount = threads }
    if let convColumnBytes { Ops.convColumnBytes = max(1, convColumnBytes) }
    if let attentionTileBytes { Ops.attentionTileBytes = max(1, attentionTileBytes) }
    if sgemmProbe { return try CoretypeCheck.runProbe() }
    if let note = CoretypeCheck.check(threads: Parallel.threadCount) {
      // Keep stdout one JSON array under --json.
      if json { FileHandle.standardError.write(Data((note + "\n").utf8)) } else { print(note) }
    }
    if json {
      let rows = try KernelBench.run(minSeconds: seconds, shrink: shrink, only: only, cpuTime: cpuTime)
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys]
      encoder.keyEncodingStrategy = .convertToSnakeCase
      print(String(decoding: try encoder.encode(rows), as: UTF8.self))
      return
    }
    print("threads: \(Parallel.threadCount)")
    print(pad("kernel", 28) + pad("rate", 16) + pad("ratio", 14) + "shape")
    _ = try KernelBench.run(minSeconds: seconds, shrink: shrink, only: only, cpuTime: cpuTime) { row in
      let rate = row.gflops.map { String(format: "%.1f GFLOP/s", $0) } ?? String(format: "%.1f GB/s", row.gbps ?? 0)
      let ratio = String(format: "%.2f×%@", row.ratio, row.ratioTo == "sgemm" ? "" : " copy")
      print(pad(row.name, 28) + pad(rate, 16) + pad(ratio, 14) + row.detail)
    }
  }

  private func pad(_ s: String, _ n: Int) -> String {
    s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count)
  }
}
