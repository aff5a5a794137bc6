import ArgumentParser
import Foundation
import ModelIO
import Models
import Tensor

/// `cogflow bench t5`: the T5-XXL encoder on CogView3's 225 tokens with random bf16 weights made in
/// memory (9.5 GB for all 24 layers), timed per pass against an sgemm rate measured in the same run.
struct BenchT5: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "t5", abstract: "T5-XXL encoder on 225 tokens with random bf16 weights.")

  @Flag(help: "Print one JSON object per measured pass instead of a table.") var json = false
  @Option(help: "Encoder layers to build (24 is T5-XXL; fewer for a quick look).") var layers = 24
  @Option(help: "Sequence length.") var tokens = T5Tokenizer.cogView3Length
  @Option(help: "Timed passes.") var passes = 2
  @Flag(help: "Keep widened float32 weights between passes (needs ≈ 4× the bf16 size).") var keepWidened = false

  func validate() throws {
    guard (1...24).contains(layers), tokens > 0, passes > 0 else {
      throw ValidationError("--layers must be 1…24, --tokens and --passes positive")
    }
  }

  func run() throws {
    var results: [[String: Any]] = []
    func report(_ name: String, seconds: Double, flops: Double, sgemm: Double?) {
      let gflops = flops / seconds / 1e9
      var r: [String: Any] = [
        "name": name, "seconds": seconds, "gflops": gflops, "flops": flops,
        "peak_rss_bytes": BenchSupport.peakRSS(), "threads": Parallel.threadCount,
      ]
      r["ratio"] = sgemm.map { gflops / $0 } ?? 1.0
      results.append(r)
      if json {
        if let data = try? JSONSerialization.data(withJSONObject: r, options: [.sortedKeys]) {
          print(String(decoding: data, as: UTF8.self))
        }
      } else {
        print(
          name.padding(toLength: 36, withPad: " ", startingAt: 0)
            + String(
              format: "%9.3f s %9.1f GFLOP/s  ratio %5.2f  peak RSS %6.2f GiB", seconds, gflops,
              r["ratio"] as? Double ?? 0, Double(BenchSupport.peakRSS()) / 1_073_741_824))
      }
    }

    let rate = try BenchSupport.sgemmRate()
    let sgemmFlops = 2.0 * 1536 * 1536 * 1536
    report("sgemm", seconds: sgemmFlops / rate / 1e9, flops: sgemmFlops, sgemm: nil)

    var config = T5Config.xxl
    config.numLayers = layers
    let start = Date()
    let source = try RandomT5Weights.make(config)
    if !json {
      print(
        String(
          format: "random bf16 weights: %d layers, %.2f GB, made in %.1f s", layers,
          Double(config.parameterCount * 2) / 1e9, Date().timeIntervalSince(start)))
    }
    let encoder = try T5Encoder(config: config, weights: source, keepWidened: keepWidened)
    let ids = [(0..<tokens).map { ($0 * 7919 + 13) % 32000 }]
    for pass in 1...passes {
      let t0 = Date()
      let out = try encoder.encode(ids)
      let seconds = Date().timeIntervalSince(t0)
      guard out.data.allSatisfy({ $0.isFinite }) else {
        throw ValidationError("the encoder produced non-finite values")
      }
      report(
        "t5.encode \(tokens) tok, \(layers) layers #\(pass)", seconds: seconds, flops: config.flops(tokens: tokens),
        sgemm: rate)
    }
  }
}

/// Random T5 weights in bf16, made in memory from a counter hash (values k/128 · 2^-6, wo 2^-7,
/// norms 1 ± 1/2): magnitudes like a trained model's, so the arithmetic meets no denormals or overflow.
enum RandomT5Weights {
  static func make(_ config: T5Config) throws -> MemoryTensorSource {
    var tensors: [String: StoredTensor] = [:]
    for (stream, (key, shape)) in config.expectedWeights().sorted(by: { $0.key < $1.key }).enumerated() {
      let scaleLog2: Int
      var offset: Float = 0
      if key.hasSuffix("layer_norm.weight") {
        scaleLog2 = -1
        offset = 1
      } else if key.hasSuffix("wo.weight") {
        scaleLog2 = -7
      } else if key == "shared.weight" || key.hasSuffix("relative_attention_bias.weight") {
        scaleLog2 = 0
      } else {
        scaleLog2 = -6
      }
      tensors[key] = try bf16(shape: shape, stream: stream + 1, scaleLog2: scaleLog2, offset: offset)
    }
    return MemoryTensorSource(tensors, location: "random bf16 T5 weights")
  }

  static func bf16(shape: [Int], stream: Int, scaleLog2: Int, offset: Float) throws -> StoredTensor {
    let n = shape.elementCount
    let p = UnsafeMutablePointer<UInt16>.allocate(capacity: max(n, 1))
    let scale = Float(sign: .plus, exponent: scaleLog2, significand: 1)
    Parallel.forRange(n, minChunk: 1 << 18) { r in
      for i in r {
        var z = (UInt64(stream) << 40 &+ UInt64(i)) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        let v = Float(Int(z >> 56) - 128) / 128 * scale + offset
        p[i] = UInt16(truncatingIfNeeded: v.bitPattern >> 16)
      }
    }
    let storage = ByteStorage(borrowing: UnsafeRawPointer(p), byteCount: 2 * n) { p.deallocate() }
    return try StoredTensor(dtype: .bf16, shape: shape, storage: storage)
  }
}
