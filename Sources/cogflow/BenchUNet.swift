import ArgumentParser
import Foundation
import ModelIO
import Models
import Tensor

/// `cogflow bench unet`: one UNet pass (a CFG step's batch of 2) with random bf16 weights of the full
/// CogView3 size, at 64² and 128² latents by default. Reduced variants (`--model-channels`, `--max-depth`,
/// `--size`) run the same code on a smaller network for a loaded or small machine.
struct BenchUNet: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "unet",
    abstract: "Time the CogView3 UNet with random bf16 weights (seconds, GFLOP/s, ratio to sgemm, peak RSS).",
    discussion: """
      The full network needs ~5.8 GB for its bf16 weights plus activations (64²: ~1 GB, 128²: a few GB) \
      and minutes per pass on a few cores. FLOPs are counted by the layers as they run (GEMM-shaped work: \
      convolutions, linear layers, attention); the ratio is GFLOP/s over the sgemm rate measured at the \
      start of the same run.
      """)

  @Flag(help: "Print one JSON object per measured pass instead of a table.") var json = false
  @Option(help: "Latent side to measure; repeat for several (default 64 and 128).") var size: [Int] = []
  @Option(help: "Batch size (2 = one CFG step).") var batch: Int = 2
  @Option(help: "model_channels (320 = CogView3; must be a multiple of 64).") var modelChannels: Int = 320
  @Option(help: "Cap every transformer depth at this (10 = CogView3's [1, 2, 10]).") var maxDepth: Int = 10
  @Option(help: "Context tokens (T5: 225).") var contextTokens: Int = 225
  @Option(help: "Passes per size (each is reported).") var passes: Int = 1
  @Option(help: "Threads (default: all cores or $COGFLOW_THREADS).") var threads: Int?
  @Flag(help: "Keep widened float32 weights after first use (4 bytes per parameter).") var keepWidened = false
  @Flag(
    help: """
      Let every tensor borrow one shared random buffer (the largest tensor's size): the full network's \
      compute with ~30 MB of weights; peak RSS then leaves out the 5.8 GB of bf16 weights.
      """)
  var sharedWeights = false
  @Flag(
    help: ArgumentHelp(
      "Time by process CPU time per thread (sgemm reference and passes), for comparisons on a loaded machine.",
      visibility: .hidden))
  var cpuTime = false

  func validate() throws {
    guard batch >= 1, passes >= 1, contextTokens >= 1 else {
      throw ValidationError("--batch, --passes and --context-tokens must be at least 1")
    }
    guard modelChannels >= 64, modelChannels % 64 == 0 else {
      throw ValidationError("--model-channels must be a positive multiple of 64")
    }
    guard maxDepth >= 1 else { throw ValidationError("--max-depth must be at least 1") }
    guard size.allSatisfy({ $0 >= 4 && $0 % 4 == 0 }) else { throw ValidationError("--size must be a multiple of 4") }
    if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
  }

  func run() throws {
    if let threads { Parallel.threadCount = threads }
    KernelBench.useCPUTime = cpuTime
    defer { KernelBench.useCPUTime = false }
    var config = UNetConfiguration.cogview3Base
    config.modelChannels = modelChannels
    config.transformerDepth = config.transformerDepth.map { min($0, maxDepth) }
    let expected = try UNet.expectedShapes(config)
    let parameters = expected.values.reduce(0) { $0 + $1.elementCount }
    let loadStart = Date()
    let weights =
      sharedWeights
      ? try BenchSupport.sharedBF16Source(expected, seed: 1) : try BenchSupport.randomBF16Source(expected, seed: 1)
    let unet = try UNet(
      configuration: config, weights: weights, residency: keepWidened ? .keepWidened : .widenPerUse,
      name: "UNet (random bf16)")
    let loadSeconds = Date().timeIntervalSince(loadStart)
    let sgemm = try BenchSupport.sgemmRate()
    if !json {
      print(
        "UNet: \(parameters) parameters (bf16 \(BenchSupport.gib(2 * Double(parameters)))), "
          + "built in \(String(format: "%.1f", loadSeconds)) s; threads \(Parallel.threadCount); "
          + "sgemm \(String(format: "%.1f", sgemm)) GFLOP/s")
    }
    for side in size.isEmpty ? [64, 128] : size {
      let x = BenchSupport.randomTensor([batch, 4, side, side], seed: 11)
      let context = BenchSupport.randomTensor([batch, contextTokens, config.contextDim], seed: 12)
      let y = BenchSupport.randomTensor([batch, config.admInChannels], seed: 13)
      let t = [Float](repeating: 999, count: batch)
      for pass in 0..<passes {
        unet.flopCounter.reset()
        let start = KernelBench.now()
        let eps = try unet(x, timesteps: t, context: context, y: y)
        let seconds = KernelBench.now() - start
        guard eps.data.allSatisfy(\.isFinite) else {
          throw ValidationError("the UNet produced non-finite values at \(side)²")
        }
        let row = BenchRow(
          name: "unet-\(side)x\(side)-b\(batch)" + (config == .cogview3Base ? "" : "-reduced")
            + (sharedWeights ? "-shared-weights" : ""),
          seconds: seconds, flops: unet.flopCounter.flops, sgemmGflops: sgemm, pass: pass,
          detail: "model_channels \(modelChannels), depth \(config.transformerDepth), \(parameters) params, "
            + "context \(contextTokens)")
        BenchSupport.emit(row, json: json)
      }
    }
  }
}

/// One measured pass, as printed by `cogflow bench unet|vae --json`.
struct BenchRow: Codable {
  var name: String
  var seconds: Double
  var flops: Double
  var gflops: Double
  var sgemmGflops: Double
  var ratio: Double
  var peakRssBytes: Int
  var rssBytes: Int
  var pass: Int
  var threads: Int
  var detail: String

  init(name: String, seconds: Double, flops: Double, sgemmGflops: Double, pass: Int, detail: String) {
    self.name = name
    self.seconds = seconds
    self.flops = flops
    gflops = flops / max(seconds, 1e-9) / 1e9
    self.sgemmGflops = sgemmGflops
    ratio = gflops / max(sgemmGflops, 1e-9)
    peakRssBytes = BenchSupport.peakRSS()
    rssBytes = BenchSupport.currentRSS()
    self.pass = pass
    threads = Parallel.threadCount
    self.detail = detail
  }
}

/// What the network benches share: random stored weights, the sgemm reference rate, RSS, output.
enum BenchSupport {
  /// Every tensor of `expected` as random bf16 in memory: matrices and kernels uniform ±1/√fan_in,
  /// 1-D weights ≈ 1 (norm scales), biases ≈ 0, so activations keep a sane range through deep stacks.
  static func randomBF16Source(_ expected: [String: [Int]], seed: UInt64) throws -> MemoryTensorSource {
    var tensors: [String: StoredTensor] = [:]
    for (index, key) in expected.keys.sorted().enumerated() {
      let shape = expected[key]!
      let n = shape.elementCount
      let bytes = UnsafeMutableRawPointer.allocate(byteCount: max(2 * n, 2), alignment: 64)
      let dst = bytes.assumingMemoryBound(to: UInt16.self)
      let (scale, offset): (Float, Float) =
        shape.count >= 2
        ? (1 / Float(shape.dropFirst().reduce(1, *)).squareRoot(), 0)
        : (key.hasSuffix("weight") ? (0.1, 1) : (0.01, 0))
      let s = seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index) &* 0xBF58_476D_1CE4_E5B9
      Parallel.forRange(n, minChunk: 1 << 16) { range in
        for i in range {
          var z = s &+ UInt64(i) &* 0x94D0_49BB_1331_11EB
          z = (z ^ (z >> 31)) &* 0xBF58_476D_1CE4_E5B9
          z ^= z >> 29
          let r = Float(z >> 40) * 0x1p-23 - 1
          dst[i] = UInt16(truncatingIfNeeded: (r * scale + offset).bitPattern >> 16)
        }
      }
      let storage = ByteStorage(borrowing: UnsafeRawPointer(bytes), byteCount: 2 * n) { bytes.deallocate() }
      tensors[key] = try StoredTensor(dtype: .bf16, shape: shape, storage: storage)
    }
    return MemoryTensorSource(tensors, location: "<random bf16 weights>")
  }

  /// Every tensor of `expected` as a view of one random bf16 buffer of the largest tensor's size, values
  /// uniform ±1/64 (≈ 1/√fan_in for the wide layers): the full network's work with little memory.
  static func sharedBF16Source(_ expected: [String: [Int]], seed: UInt64) throws -> MemoryTensorSource {
    let largest = expected.values.map(\.elementCount).max() ?? 0
    let values = Ops.affine(randomTensor([largest], seed: seed), scale: 1.0 / 64)
    let shared = try StoredTensor(values, as: .bf16)
    var tensors: [String: StoredTensor] = [:]
    for (key, shape) in expected {
      tensors[key] = try StoredTensor(dtype: .bf16, shape: shape, storage: shared.storage, offset: shared.offset)
    }
    return MemoryTensorSource(tensors, location: "<shared random bf16 buffer>")
  }

  /// A float32 tensor of uniform values in [−1, 1).
  static func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return Tensor(uninitializedShape: shape) { out in
      for i in 0..<out.count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        out[i] = Float(state >> 40) * 0x1p-23 - 1
      }
    }
  }

  /// The best sgemm rate (GFLOP/s) over a few 1536³ products, the reference for `ratio`.
  static func sgemmRate() throws -> Double {
    let n = 1536
    let a = randomTensor([n, n], seed: 1)
    let b = randomTensor([n, n], seed: 2)
    var best = Double.infinity
    for _ in 0..<4 {
      let start = KernelBench.now()
      _ = try Ops.matmul(a, b)
      best = min(best, KernelBench.now() - start)
    }
    return 2 * Double(n * n * n) / best / 1e9
  }

  /// Peak resident set size of this process so far (getrusage; KiB on Linux).
  static func peakRSS() -> Int {
    var usage = rusage()
    #if os(Linux)
      getrusage(RUSAGE_SELF.rawValue, &usage)
    #else
      getrusage(RUSAGE_SELF, &usage)
    #endif
    #if os(Linux)
      return Int(usage.ru_maxrss) * 1024
    #else
      return Int(usage.ru_maxrss)
    #endif
  }

  /// Current resident set size (/proc/self/statm on Linux; 0 where unavailable).
  static func currentRSS() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
  }

  static func gib(_ bytes: Double) -> String { String(format: "%.2f GiB", bytes / 1_073_741_824) }

  static func emit(_ row: BenchRow, json: Bool) {
    if json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.sortedKeys]
      encoder.keyEncodingStrategy = .convertToSnakeCase
      if let data = try? encoder.encode(row) { print(String(decoding: data, as: UTF8.self)) }
    } else {
      print(
        String(
          format: "%@  %.3f s  %.1f GFLOP  %.1f GFLOP/s  %.2f× sgemm  peak RSS %@  (%@)", row.name, row.seconds,
          row.flops / 1e9, row.gflops, row.ratio, gib(Double(row.peakRssBytes)), row.detail))
    }
  }
}
