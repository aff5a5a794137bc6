import COpenBLAS
import Dispatch
import Foundation

/// The kernel benchmark behind `cogflow bench kernels`: the sgemm rate of a large square product,
/// then each kernel at CogView3 shapes, with its rate and its ratio to a reference measured in the
/// same run (the sgemm rate for compute-bound kernels, a parallel copy's bandwidth for memory-bound ones).
public enum KernelBench {
  /// One measured kernel.
  public struct Row: Sendable, Codable, Equatable {
    /// Stable identifier, e.g. `sgemm`, `conv3x3_64x64x320`.
    public var name: String
    /// What was run, in words and shapes.
    public var detail: String
    /// GFLOP/s for compute-bound rows (nil otherwise).
    public var gflops: Double?
    /// GB/s (bytes read + written) for memory-bound rows (nil otherwise).
    public var gbps: Double?
    /// Rate divided by the reference row's rate of the same run.
    public var ratio: Double
    /// Name of the reference row: `sgemm` or `copy`.
    public var ratioTo: String
    /// Best time of one call, in seconds.
    public var seconds: Double
  }

  /// Shapes are divided by `shrink` along their spatial/token axes (1 = the real CogView3 shapes);
  /// tests use a large value to exercise the code quickly. Each row runs for about `minSeconds`.
  /// `only`, when given, skips the kernel rows whose name does not contain it. With `cpuTime`, each
  /// call is timed by the process's CPU time divided by the thread count instead of the wall clock: on a
  /// loaded machine with one thread this estimates the idle-machine time (preempted time is not counted).
  public static func run(
    minSeconds: Double = 0.5, shrink: Int = 1, only: String? = nil, cpuTime: Bool = false,
    progress: ((Row) -> Void)? = nil
  ) throws -> [Row] {
    useCPUTime = cpuTime
    defer { useCPUTime = false }
    var rows: [Row] = []
    func emit(_ r: Row) {
      rows.append(r)
      progress?(r)
    }
    let s = max(1, shrink)
    var rng = BenchNoise(seed: 1)

    // sgemm reference: a square product.
    let n = max(64, 2048 / s)
    let a = rng.tensor([n, n])
    let b = rng.tensor([n, n])
    let tSgemm = try time(minSeconds) { _ = try Ops.matmul(a, b) }
    let sgemmRate = 2 * Double(n * n * n) / tSgemm / 1e9
    emit(
      Row(
        name: "sgemm", detail: "cblas_sgemm \(n)×\(n)×\(n), \(Parallel.threadCount) threads",
        gflops: sgemmRate, gbps: nil, ratio: 1, ratioTo: "sgemm", seconds: tSgemm))

    // Memory reference: a parallel copy (read + write) of a buffer far larger than the caches.
    let copyCount = max(1 << 16, (32 << 20) / s)
    let src = [Float](repeating: 1, count: copyCount)
    var dst = [Float](repeating: 0, count: copyCount)
    let tCopy = try time(minSeconds) {
      src.withUnsafeBufferPointer { ps in
        dst.withUnsafeMutableBufferPointer { pd in
          let sp = ps.baseAddress!
          let dp = pd.baseAddress!
          Parallel.forRange(copyCount, minChunk: 1 << 16) { r in
            (dp + r.lowerBound).update(from: sp + r.lowerBound, count: r.count)
          }
        }
      }
    }
    let copyRate = 8 * Double(copyCount) / tCopy / 1e9
    emit(
      Row(
        name: "copy", detail: "parallel copy of \((copyCount * 4) >> 20) MiB (read + write)", gflops: nil,
        gbps: copyRate, ratio: 1, ratioTo: "copy", seconds: tCopy))

    func skip(_ name: String) -> Bool { only.map { !name.contains($0) } ?? false }
    func compute(_ name: String, _ detail: String, flops: Double, _ body: () throws -> Void) throws {
      if skip(name) { return }
      let t = try time(minSeconds, body)
      let rate = flops / t / 1e9
      emit(
        Row(
          name: name, detail: detail, gflops: rate, gbps: nil, ratio: rate / sgemmRate, ratioTo: "sgemm",
          seconds: t))
    }
    func memory(_ name: String, _ detail: String, bytes: Double, _ body: () throws -> Void) throws {
      if skip(name) { return }
      let t = try time(minSeconds, body)
      let rate = bytes / t / 1e9
      emit(
        Row(
          name: name, detail: detail, gflops: nil, gbps: rate, ratio: rate / copyRate, ratioTo: "copy", seconds: t))
    }

    // 3×3 convolutions of the UNet levels at a 64² latent, and level 0 at a 128² latent with batch 2 (CFG).
    for (size, ch, batch) in [(64, 320, 1), (32, 640, 1), (16, 1280, 1), (128, 320, 2)] {
      let hw = max(4, size / s)
      let c = max(8, ch / s)
      let x = rng.tensor([batch, c, hw, hw])
      let w = rng.tensor([c, c, 3, 3], scale: 0.05)
      let bias = rng.tensor([c])
      let flops = 2 * Double(batch * c * c * 9 * hw * hw)
      try compute(
        "conv3x3_\(size)x\(size)x\(ch)" + (batch > 1 ? "_b\(batch)" : ""),
        "conv2d [\(batch), \(c), \(hw), \(hw)] × [\(c), \(c), 3, 3], stride 1, pad 1", flops: flops
      ) { _ = try Ops.conv2d(x, weight: w, bias: bias, stride: 1, padding: .uniform(1)) }
    }

    // Self-attention of 4096 tokens (a 64² level-1 map), 10 heads × 64; cross-attention onto 225 T5 tokens.
    let heads = 10
    let tokens = max(16, 4096 / s)
    let ctx = max(8, 225 / s)
    let width = heads * 64
    let q = rng.tensor([1, tokens, width])
    let kv = rng.tensor([1, tokens, width])
    try compute(
      "attention_self_\(4096)", "attention [1, \(tokens), \(width)], \(heads) heads × 64, self",
      flops: 4 * Double(tokens * tokens * width)
    ) { _ = try Ops.attention(q: q, k: kv, v: kv, heads: heads) }
    let kc = rng.tensor([1, ctx, width])
    try compute(
      "attention_cross_\(4096)x225", "attention [1, \(tokens), \(width)] onto [1, \(ctx), \(width)], \(heads) heads",
      flops: 4 * Double(tokens * ctx * width)
    ) { _ = try Ops.attention(q: q, k: kc, v: kc, heads: heads) }

    // Memory-bound glue at the 64² × 640 level: GroupNorm (32 groups) and the transformer's GEGLU
    // ([4096, 8·640] → [4096, 4·640]).
    let gnHW = max(4, 64 / s)
    let gnX = rng.tensor([1, max(32, 640 / s / 32 * 32), gnHW, gnHW])  // channels a multiple of the 32 groups
    let gnW = rng.tensor([gnX.shape[1]])
    try memory(
      "groupnorm_64x64x640", "groupNorm \(gnX.shape), 32 groups, affine", bytes: 8 * Double(gnX.count)
    ) { _ = try Ops.groupNorm(gnX, groups: 32, weight: gnW, bias: gnW, eps: 1e-5) }
    let ggX = rng.tensor([1, tokens, 8 * max(8, 640 / s)])
    try memory(
      "geglu_64x64x640", "geglu \(ggX.shape) → [.., \(ggX.shape[2] / 2)]", bytes: 6 * Double(ggX.count)
    ) { _ = try Ops.geglu(ggX) }
    return rows
  }

  /// Whether `now()` reads process CPU time per thread (`--cpu-time`) instead of the wall clock: with one
  /// thread on a loaded machine this leaves out the time the process was preempted.
  nonisolated(unsafe) public static var useCPUTime = false

  /// Seconds on the wall clock, or process CPU seconds per thread with `useCPUTime`.
  public static func now() -> Double {
    if useCPUTime {
      var ts = timespec()
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
      return (Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9) / Double(Parallel.threadCount)
    }
    return Double(DispatchTime.now().uptimeNanoseconds) / 1e9
  }

  /// Best wall time of `body` over repeated calls after one warm-up, running at least 3 times and
  /// about `minSeconds` in all.
  static func time(_ minSeconds: Double, _ body: () throws -> Void) throws -> Double {
    try body()
    var best = Double.infinity
    var total = 0.0
    var reps = 0
    while reps < 3 || total < minSeconds {
      let t0 = now()
      try body()
      let dt = now() - t0
      best = min(best, dt)
      total += dt
      reps += 1
    }
    return best
  }
}

/// Cheap deterministic fill for benchmark inputs (values do not matter, only that they are not
/// denormal or constant); splitmix64.
struct BenchNoise {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> Float {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    z ^= z >> 31
    return Float(z >> 40) / Float(1 << 24) * 2 - 1
  }
  mutating func tensor(_ shape: [Int], scale: Float = 1) -> Tensor {
    Tensor(uninitializedShape: shape) { p in
      for i in 0..<p.count { p[i] = next() * scale }
    }
  }
}
