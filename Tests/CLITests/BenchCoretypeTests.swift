import Foundation
import XCTest

/// `cogflow bench kernels` and a user's OPENBLAS_CORETYPE (issue 13, item 5): the setting is measured
/// against OpenBLAS' own choice in child processes, and a slower one is reported.
final class BenchCoretypeTests: XCTestCase {
  private func run(coretype: String?) throws -> CLI.Output {
    var env = CLI.environment(cache: NSTemporaryDirectory() + "bench-coretype-cache")
    env.removeValue(forKey: "OPENBLAS_CORETYPE")
    if let coretype { env["OPENBLAS_CORETYPE"] = coretype }
    env["COGFLOW_THREADS"] = "2"
    // --only with a name no row has: just the sgemm and copy rows, briefly.
    return try CLI.run(
      ["bench", "kernels", "--seconds", "0.05", "--only", "no-such-kernel"], env: env, cwd: NSTemporaryDirectory())
  }

  private func cpuFlags() -> Set<String> {
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
      let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
    else { return [] }
    return Set(line.split(separator: " ").map(String.init))
  }

  func testProbePrintsCoreAndRate() throws {
    var env = ProcessInfo.processInfo.environment
    env["OPENBLAS_CORETYPE"] = "Prescott"
    env["COGFLOW_THREADS"] = "1"
    let out = try CLI.run(["bench", "kernels", "--sgemm-probe"], env: env, cwd: NSTemporaryDirectory())
    XCTAssertEqual(out.status, 0, out.stderr)
    let object = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any]
    XCTAssertEqual(object?["core"] as? String, "Prescott", out.stdout)
    XCTAssertGreaterThan(object?["gflops"] as? Double ?? 0, 0, out.stdout)
  }

  /// Prescott (generic SSE3) is several times slower than the AVX2/AVX-512 kernels OpenBLAS or CogFlow
  /// picks on such CPUs (12 vs 74 GFLOP/s measured on one thread), so the note must appear there.
  func testGenericCoretypeOnAVX2MachineIsReported() throws {
    guard cpuFlags().isSuperset(of: ["avx2", "fma"]) else {
      throw XCTSkip("this CPU has no AVX2+FMA, so Prescott may be OpenBLAS' best choice here")
    }
    let out = try run(coretype: "Prescott")
    XCTAssertEqual(out.status, 0, out.stderr)
    XCTAssertTrue(
      out.stdout.contains("note: OPENBLAS_CORETYPE=Prescott makes OpenBLAS run its Prescott kernels"), out.stdout)
    XCTAssertTrue(out.stdout.contains("× faster"), out.stdout)
  }

  func testNoNoteWithoutTheVariable() throws {
    let out = try run(coretype: nil)
    XCTAssertEqual(out.status, 0, out.stderr)
    XCTAssertTrue(out.stdout.contains("sgemm"), out.stdout)
    XCTAssertFalse(out.stdout.contains("note: OPENBLAS_CORETYPE"), out.stdout)
  }
}
