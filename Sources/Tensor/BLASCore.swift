import COpenBLAS
import Foundation

/// Choosing OpenBLAS' kernel family. Debian's OpenBLAS 0.3.21 is built with DYNAMIC_ARCH and picks
/// its kernels from the CPU model at load time; on CPUs newer than the library (Sapphire/Emerald
/// Rapids, model 0xCF, seen on this project's machines) it falls back to `Prescott`, the generic SSE3
/// kernels, at about a sixth of the AVX-512 rate (measured 12 vs 74 GFLOP/s on one thread, 1024³).
/// The choice is read from `OPENBLAS_CORETYPE` when the library loads, before `main`, so the
/// command-line tool re-executes itself once with the variable set (`BLASCore.reexecIfUntuned`).
public enum BLASCore {
  /// The kernel family OpenBLAS is using (`openblas_get_corename`).
  public static var current: String { String(cString: openblas_get_corename()) }

  /// The family to force on this CPU, or nil when OpenBLAS' own choice is fine (or the CPU lacks AVX2).
  /// AVX-512 (F, BW, VL, DQ) → `SkylakeX`; AVX2 + FMA → `Haswell`.
  public static func preferred(cpuFlags: Set<String>, detected: String) -> String? {
    let generic: Set<String> = [
      "Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Katmai", "Coppermine",
      "Northwood", "Banias", "Atom", "Barcelona", "Opteron", "Opteron_SSE3", "Athlon",
    ]
    guard generic.contains(detected) else { return nil }
    if cpuFlags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq"]) { return "SkylakeX" }
    if cpuFlags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
    return nil
  }

  /// The CPU feature flags of the first processor in /proc/cpuinfo (empty elsewhere).
  public static func cpuFlags() -> Set<String> {
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [] }
    for line in text.split(separator: "\n") where line.hasPrefix("flags") {
      guard let colon = line.firstIndex(of: ":") else { continue }
      return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }
    return []
  }

  /// When `OPENBLAS_CORETYPE` is unset and OpenBLAS fell back to generic kernels on a CPU with AVX2 or
  /// AVX-512, sets the variable and replaces the process with a fresh copy of itself (same arguments).
  /// Returns normally when nothing needs changing or re-execution is impossible.
  /// `COGFLOW_BLAS_AUTOTUNE=0` turns this off.
  public static func reexecIfUntuned() {
    let env = ProcessInfo.processInfo.environment
    guard env["OPENBLAS_CORETYPE"] == nil, env["COGFLOW_BLAS_AUTOTUNE"] != "0",
      let core = preferred(cpuFlags: cpuFlags(), detected: current)
    else { return }
    setenv("OPENBLAS_CORETYPE", core, 1)
    let args = CommandLine.arguments
    var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) }
    cargs.append(nil)
    execv("/proc/self/exe", &cargs)
    // execv only returns on failure: carry on with the generic kernels.
    unsetenv("OPENBLAS_CORETYPE")
  }
}
