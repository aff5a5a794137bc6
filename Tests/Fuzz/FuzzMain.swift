import Foundation
import ModelIO
import Workflow

/// The fuzz targets: `COGFLOW_FUZZ_TARGET=modelio` (default) or `workflow`.
enum FuzzTarget {
  static let name = ProcessInfo.processInfo.environment["COGFLOW_FUZZ_TARGET"] ?? "modelio"

  static func run(_ bytes: UnsafeRawBufferPointer) -> Int {
    name == "workflow" ? WorkflowFuzz.run(bytes) : ModelIOFuzz.run(bytes)
  }
}

/// The workflow front end on untrusted text: YAML → reader → validation → expansion → plan (no cache, toy
/// node types, at most 1,000 instances). Errors are expected; crashes, hangs and large allocations are findings.
enum WorkflowFuzz {
  static let registry = NodeRegistry(ToyNodes.all)
  static let base = FileManager.default.temporaryDirectory.appendingPathComponent("cogflow-fuzz-empty").path

  static func run(_ bytes: UnsafeRawBufferPointer) -> Int {
    let text = String(decoding: bytes, as: UTF8.self)
    let document = WorkflowReader.read(text: text, file: "fuzz.yaml", baseDirectory: base)
    var resolver = WorkflowResolver(registry: registry, options: ResolveOptions(maxNodes: 1_000))
    guard let workflow = try? resolver.resolve(document) else { return 0 }
    _ = Engine(workflow: workflow, registry: registry, cache: nil).plan()
    return 1
  }
}

#if COGFLOW_LIBFUZZER
  // libFuzzer build (Tests/Fuzz/README.md). SwiftPM renames an executable's entry point, so libFuzzer's
  // own main is not used: this main hands control to libFuzzer's driver, found at run time.
  typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
  typealias FuzzDriver =
    @convention(c) (
      UnsafeMutablePointer<CInt>, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
      FuzzCallback
    ) -> CInt

  @main
  struct FuzzMain {
    static func main() {
      guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "LLVMFuzzerRunDriver") else {
        fputs("libFuzzer driver not linked: build with -sanitize=fuzzer\n", stderr)
        exit(2)
      }
      let driver = unsafeBitCast(symbol, to: FuzzDriver.self)
      var argc = CommandLine.argc
      var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
      let rc = driver(&argc, &argv) { data, size in
        _ = FuzzTarget.run(UnsafeRawBufferPointer(start: data, count: size))
        return 0
      }
      exit(rc)
    }
  }
#else
  /// Without libFuzzer: a seeded mutation loop over the corpus (bit flips, byte sets, interesting
  /// integers, inserts, deletes, splices), for machines or builds where -sanitize=fuzzer is absent.
  /// `cogflow-fuzz [seconds] [corpus dir ...]`; a crash leaves the input in `fuzz-crash.bin`.
  @main
  struct FuzzMain {
    static func main() throws {
      let args = CommandLine.arguments.dropFirst()
      let seconds = args.first.flatMap(Double.init) ?? 60
      var corpus: [[UInt8]] = []
      for dir in args.dropFirst() {
        for name in (try? FileManager.default.subpathsOfDirectory(atPath: dir)) ?? [] {
          if let d = FileManager.default.contents(atPath: dir + "/" + name), !d.isEmpty, d.count < 1 << 20 {
            corpus.append(Array(d))
          }
        }
      }
      if corpus.isEmpty { corpus = [[0]] }
      let seed = ProcessInfo.processInfo.environment["COGFLOW_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x5EED
      var rng = SplitMix(seed: seed)
      let start = Date()
      var execs = 0
      var accepted = 0
      let crashPath = "fuzz-crash.bin"
      // COGFLOW_FUZZ_CLOCK=cpu: `seconds` counts this process's CPU time (fair on a loaded machine).
      let cpuClock = ProcessInfo.processInfo.environment["COGFLOW_FUZZ_CLOCK"] == "cpu"
      func elapsed() -> Double {
        guard cpuClock else { return Date().timeIntervalSince(start) }
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
      }
      while elapsed() < seconds {
        var input = corpus[Int(rng.next() % UInt64(corpus.count))]
        for _ in 0..<(1 + Int(rng.next() % 8)) { mutate(&input, &rng, corpus) }
        // Saved before the run, removed after: a crash leaves the input behind.
        _ = FileManager.default.createFile(atPath: crashPath, contents: Data(input))
        accepted += input.withUnsafeBytes { FuzzTarget.run($0) }
        execs += 1
        if execs % 500 == 0 {
          // A progress line, so a run stopped early still reports what it did.
          print("progress: execs \(execs), \(Int(elapsed())) s (\(cpuClock ? "CPU" : "wall")), no crash")
          fflush(stdout)
        }
      }
      try? FileManager.default.removeItem(atPath: crashPath)
      print(
        "target \(FuzzTarget.name): execs \(execs) in \(Int(seconds)) s (\(cpuClock ? "CPU" : "wall")),"
          + " \(accepted) acceptances,"
          + " corpus \(corpus.count), no crash")
    }

    static func mutate(_ b: inout [UInt8], _ rng: inout SplitMix, _ corpus: [[UInt8]]) {
      let interesting: [UInt64] = [0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0xFFFF_FFFF, 1 << 60, UInt64.max]
      if b.isEmpty { b = [UInt8(truncatingIfNeeded: rng.next())] }
      let i = Int(rng.next() % UInt64(b.count))
      switch rng.next() % 7 {
      case 0: b[i] ^= UInt8(1 << (rng.next() % 8))
      case 1: b[i] = UInt8(truncatingIfNeeded: rng.next())
      case 2:
        let v = interesting[Int(rng.next() % UInt64(interesting.count))]
        for k in 0..<min(8, b.count - i) { b[i + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
      case 3:
        b.insert(contentsOf: (0..<(1 + Int(rng.next() % 16))).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: i)
      case 4: b.removeSubrange(i..<min(b.count, i + 1 + Int(rng.next() % 64)))
      case 5:
        let other = corpus[Int(rng.next() % UInt64(corpus.count))]
        let j = Int(rng.next() % UInt64(max(other.count, 1)))
        b = Array(b[..<i]) + Array(other[min(j, other.count)...])
      default: b = Array(b[..<max(1, i)])  // truncation
      }
    }
  }

  struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
      state &+= 0x9E37_79B9_7F4A_7C15
      var z = state
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
  }
#endif
