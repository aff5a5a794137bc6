import XCTest

@testable import Tensor

final class BLASCoreTests: XCTestCase {
  func testForcesAVX512FamilyOnlyWhenOpenBLASFellBack() {
    let avx512: Set = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"]
    XCTAssertEqual(BLASCore.preferred(cpuFlags: avx512, detected: "Prescott"), "SkylakeX")
    XCTAssertNil(BLASCore.preferred(cpuFlags: avx512, detected: "Cooperlake"))
    XCTAssertNil(BLASCore.preferred(cpuFlags: avx512, detected: "Zen"))
  }

  func testAVX2WithoutAVX512GetsHaswellAndOldCPUsNothing() {
    XCTAssertEqual(BLASCore.preferred(cpuFlags: ["avx2", "fma", "sse4_2"], detected: "Prescott"), "Haswell")
    XCTAssertNil(BLASCore.preferred(cpuFlags: ["avx", "sse4_2"], detected: "Prescott"))
    XCTAssertNil(BLASCore.preferred(cpuFlags: [], detected: "Prescott"))
  }

  func testCurrentCoreNameIsReported() {
    XCTAssertFalse(BLASCore.current.isEmpty)
  }
}
