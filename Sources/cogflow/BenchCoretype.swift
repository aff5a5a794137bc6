import Foundation
import Tensor

/// `cogflow bench kernels` tells the user when their `OPENBLAS_CORETYPE` costs speed (issue 13, item 5):
/// OpenBLAS reads the variable when it loads, so both choices are measured in child processes of this
/// binary (`bench kernels --sgemm-probe`), one with the user's setting and one without it (where CogFlow's
/// own choice, `BLASCore.reexecIfUntuned`, applies as usual).
enum CoretypeCheck {
  /// What one probe child reports: the kernel family OpenBLAS runs and its sgemm rate (1536³, best of 4).
  struct Probe: Codable, Equatable {
    var core: String
    var gflops: Double
  }

  /// A setting that is more than this much slower than OpenBLAS' own choice is reported.
  static let slowerThreshold = 0.9

  /// The note for the user, or nil when both runs use the same kernels or the setting costs under 10 %.
  static func advice(setting: String, user: Probe, automatic: Probe) -> String? {
    guard user.core != automatic.core, user.gflops < automatic.gflops * slowerThreshold else { return nil }
    return String(
      format: "note: OPENBLAS_CORETYPE=%@ makes OpenBLAS run its %@ kernels at %.0f GFLOP/s (sgemm 1536³); "
        + "without the variable this CPU gets %@ at %.0f GFLOP/s, %.2f× faster. Unset OPENBLAS_CORETYPE "
        + "for CogFlow unless you need it.",
      setting, user.core, user.gflops, automatic.core, automatic.gflops, automatic.gflops / max(user.gflops, 1e-9))
  }

  /// Measures the user's setting against OpenBLAS' own choice; nil when the variable is unset, a probe
  /// fails (the reason goes to stderr) or there is nothing to say.
  static func check(threads: Int) -> String? {
    var env = ProcessInfo.processInfo.environment
    guard let setting = env["OPENBLAS_CORETYPE"], !setting.isEmpty else { return nil }
    env["COGFLOW_THREADS"] = String(threads)
    var automaticEnv = env
    automaticEnv.removeValue(forKey: "OPENBLAS_CORETYPE")
    do {
      let user = try probe(environment: env)
      let automatic = try probe(environment: automaticEnv)
      return advice(setting: setting, user: user, automatic: automatic)
    } catch {
      FileHandle.standardError.write(Data("bench kernels: could not check OPENBLAS_CORETYPE: \(error)\n".utf8))
      return nil
    }
  }

  struct ProbeError: Error, CustomStringConvertible {
    var description: String
  }

  /// Runs this binary's hidden `bench kernels --sgemm-probe` with `environment`.
  static func probe(environment: [String: String]) throws -> Probe {
    let binary =
      (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    process.arguments = ["bench", "kernels", "--sgemm-probe"]
    process.environment = environment
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
      throw ProbeError(description: "\(binary) bench kernels --sgemm-probe exited \(process.terminationStatus)")
    }
    do {
      return try JSONDecoder().decode(Probe.self, from: data)
    } catch {
      throw ProbeError(description: "unreadable probe output \(String(decoding: data.prefix(200), as: UTF8.self))")
    }
  }

  /// The child side: prints one `Probe` as JSON.
  static func runProbe() throws {
    let probe = Probe(core: BLASCore.current, gflops: try BenchSupport.sgemmRate())
    print(String(decoding: try JSONEncoder().encode(probe), as: UTF8.self))
  }
}
