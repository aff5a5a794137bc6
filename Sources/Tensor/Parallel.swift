import COpenBLAS
import Dispatch
import Foundation

/// The one thread-count setting: OpenBLAS' GEMM threads and the Dispatch fan-out of the
/// elementwise and norm kernels. Defaults to all cores, or `$COGFLOW_THREADS` when set.
public enum Parallel {
  nonisolated(unsafe) private static var _threads: Int = {
    if let s = ProcessInfo.processInfo.environment["COGFLOW_THREADS"], let n = Int(s), n > 0 {
      return n
    }
    return ProcessInfo.processInfo.activeProcessorCount
  }()
  nonisolated(unsafe) private static var configured = false

  /// Threads used by the kernels.
  public static var threadCount: Int {
    get {
      if !configured { apply() }
      return _threads
    }
    set {
      _threads = max(1, newValue)
      apply()
    }
  }

  /// The thread count OpenBLAS currently uses (for checks and the bench).
  public static var blasThreadCount: Int { Int(openblas_get_num_threads()) }

  private static func apply() {
    configured = true
    openblas_set_num_threads(Int32(_threads))
  }

  /// Runs `body` over `0..<count` split into at most `threadCount` contiguous ranges of at least
  /// `minChunk` elements each; small work runs inline on the caller.
  @inlinable
  public static func forRange(_ count: Int, minChunk: Int = 4096, _ body: (Range<Int>) -> Void) {
    guard count > 0 else { return }
    let parts = min(threadCount, max(1, count / max(minChunk, 1)))
    if parts <= 1 {
      body(0..<count)
      return
    }
    let step = (count + parts - 1) / parts
    DispatchQueue.concurrentPerform(iterations: parts) { p in
      let lo = p * step
      let hi = min(count, lo + step)
      if lo < hi { body(lo..<hi) }
    }
  }

  /// Runs `body` with OpenBLAS limited to one thread, then restores the setting. Kernels that fan
  /// out GEMMs across Dispatch workers themselves use this so the two thread pools do not nest
  /// (reference/performance.md §6.2: nested threading falls apart on 2 cores).
  public static func withSingleThreadedBLAS<R>(_ body: () throws -> R) rethrows -> R {
    let n = threadCount
    if n == 1 { return try body() }
    openblas_set_num_threads(1)
    defer { openblas_set_num_threads(Int32(n)) }
    return try body()
  }

  /// Runs `body(worker, range)` on `min(threadCount, count)` workers, each given one contiguous range
  /// of `0..<count`, so a worker can set up per-thread scratch once.
  @inlinable
  public static func forWorkers(_ count: Int, _ body: (_ worker: Int, _ range: Range<Int>) -> Void) {
    guard count > 0 else { return }
    let parts = min(threadCount, count)
    if parts <= 1 {
      body(0, 0..<count)
      return
    }
    DispatchQueue.concurrentPerform(iterations: parts) { p in
      let lo = p * count / parts
      let hi = (p + 1) * count / parts
      if lo < hi { body(p, lo..<hi) }
    }
  }

  /// Runs `body(i)` for each `i` in `0..<count`, spread across `threadCount` workers.
  @inlinable
  public static func forEach(_ count: Int, _ body: (Int) -> Void) {
    guard count > 0 else { return }
    if count == 1 || threadCount == 1 {
      for i in 0..<count { body(i) }
      return
    }
    let parts = min(threadCount, count)
    let step = (count + parts - 1) / parts
    DispatchQueue.concurrentPerform(iterations: parts) { p in
      let lo = p * step
      let hi = min(count, lo + step)
      if lo < hi { for i in lo..<hi { body(i) } }
    }
  }
}
