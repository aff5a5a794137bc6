import XCTest

@testable import Tensor

/// `cogflow bench kernels` on shrunken shapes: every required row is there, with sane rates.
final class KernelBenchTests: XCTestCase {
  func testBenchProducesAllRows() throws {
    // Every shrink factor must give valid shapes (GroupNorm channels stay a multiple of 32, ...).
    for shrink in [7, 16, 64] { _ = try KernelBench.run(minSeconds: 0, shrink: shrink) }
    let rows = try KernelBench.run(minSeconds: 0.001, shrink: 32)
    XCTAssertEqual(
      rows.map(\.name),
      [
        "sgemm", "copy", "conv3x3_64x64x320", "conv3x3_32x32x640", "conv3x3_16x16x1280", "conv3x3_128x128x320_b2",
        "attention_self_4096", "attention_cross_4096x225", "groupnorm_64x64x640", "geglu_64x64x640",
      ])
    XCTAssertEqual(rows[0].ratio, 1)
    for row in rows {
      let rate = row.gflops ?? row.gbps ?? 0
      XCTAssertTrue(rate.isFinite && rate > 0, "\(row.name): rate \(rate)")
      XCTAssertTrue((row.gflops == nil) != (row.gbps == nil), row.name)
      XCTAssertEqual(row.ratioTo, row.gflops != nil ? "sgemm" : "copy")
      let reference = rows.first { $0.name == row.ratioTo }!
      XCTAssertEqual(row.ratio, rate / (reference.gflops ?? reference.gbps!), accuracy: 1e-9)
    }
  }
}
