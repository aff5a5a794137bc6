import XCTest

@testable import Diffusion
@testable import Tensor

final class ScheduleTests: XCTestCase {
  let schedule = LegacyDDPMSchedule.cogView3

  /// The three values quoted by reference/cogview3-official.md §5.1 (computed there with the official class).
  func testReferenceSigmas() throws {
    XCTAssertEqual(schedule.count, 1000)
    XCTAssertEqual(try schedule.sigma(at: 0), 0.02916716, accuracy: 2e-8)
    XCTAssertEqual(try schedule.sigma(at: 499), 1.61288619, accuracy: 2e-7)
    XCTAssertEqual(try schedule.sigma(at: 999), 14.61464119, accuracy: 2e-6)
    XCTAssertEqual(schedule.alphasCumprod[0], 0.99915, accuracy: 1e-12)
    XCTAssertEqual(schedule.alphasCumprod[999], 0.0046600985, accuracy: 1e-10)
  }

  /// The whole table against the official `DiscreteDenoiser.sigmas`, to within PyTorch's last-bit differences.
  func testTableMatchesOfficial() throws {
    let golden = try Golden.load()
    XCTAssertEqual(golden.sigma_table.count, 1000)
    var worst: Float = 0
    for (a, b) in zip(schedule.sigmas, golden.sigma_table) { worst = max(worst, abs(a - b) / b) }
    XCTAssertLessThanOrEqual(worst, 1.2e-7, "largest relative difference \(worst)")
  }

  func testGridsMatchOfficial() throws {
    let golden = try Golden.load()
    for n in [50, 24, 8, 5, 4] {
      let g = try XCTUnwrap(golden.grids[String(n)])
      XCTAssertEqual(try schedule.timesteps(steps: n), g.timesteps, "N = \(n)")
      let sigmas = try schedule.sigmas(steps: n)
      XCTAssertEqual(sigmas.count, n + 1)
      XCTAssertEqual(sigmas.last, 0)
      for (a, b) in zip(sigmas, g.sigmas) { XCTAssertEqual(a, b, accuracy: max(b, 1e-3) * 1.2e-7, "N = \(n)") }
    }
    // The reference's listed grids (§5.1).
    XCTAssertEqual(try schedule.timesteps(steps: 4), [999, 749, 499, 249])
    XCTAssertEqual(try schedule.timesteps(steps: 8), [999, 874, 749, 624, 499, 374, 249, 124])
    XCTAssertEqual(try schedule.timesteps(steps: 5), [999, 799, 599, 399, 199])
    XCTAssertEqual(
      Array(try schedule.timesteps(steps: 24).suffix(12)), [499, 457, 416, 374, 333, 291, 249, 208, 166, 124, 83, 41])
    XCTAssertEqual(Array(try schedule.timesteps(steps: 50).suffix(2)), [39, 19])
    XCTAssertEqual(try schedule.sigmas(steps: 24)[12], 1.612886, accuracy: 1e-6)
    XCTAssertEqual(try schedule.sigmas(steps: 5)[4], 0.569285, accuracy: 1e-6)
  }

  func testSigmaToIndex() throws {
    for t in [0, 1, 19, 199, 499, 998, 999] { XCTAssertEqual(schedule.index(of: schedule.sigmas[t]), t) }
    // Between two entries: the nearer one.
    let mid = (schedule.sigmas[300] * 3 + schedule.sigmas[301]) / 4
    XCTAssertEqual(schedule.index(of: mid), 300)
    XCTAssertEqual(schedule.index(of: 100), 999)
    XCTAssertEqual(schedule.index(of: 0), 0)
  }

  func testStepPlans() throws {
    XCTAssertEqual(try StepPlan.relay.executedTimesteps(schedule).first, 499)
    XCTAssertEqual(try StepPlan.distilledRelay1.executedTimesteps(schedule), [199])
    XCTAssertEqual(try StepPlan.distilledRelay2.executedTimesteps(schedule), [399, 199])
    XCTAssertEqual(try StepPlan.distilledBase4.executedTimesteps(schedule), [999, 749, 499, 249])
    XCTAssertEqual(try StepPlan.base.executedTimesteps(schedule).count, 50)
  }

  func testBadArgumentsThrow() {
    XCTAssertThrowsError(try schedule.timesteps(steps: 0))
    XCTAssertThrowsError(try schedule.timesteps(steps: 1001))
    XCTAssertThrowsError(try schedule.sigma(at: 1000))
    XCTAssertThrowsError(try LegacyDDPMSchedule(linearStart: 0.1, linearEnd: 2))
    XCTAssertThrowsError(try StepPlan(gridSteps: 5, runSteps: 6).sigmas(schedule))
    XCTAssertThrowsError(try StepPlan(gridSteps: 5, runSteps: 0).sigmas(schedule))
  }
}
