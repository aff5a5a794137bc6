import Foundation
import XCTest

@testable import Nodes
@testable import Workflow

final class TileTests: XCTestCase {
  func testPlanArtifactAndValidation() throws {
    let out = try NodeHarness.run(TileNode(), [:], ["tile": .int(512), "overlap": .int(64)])
    XCTAssertEqual(try Artifacts.decodeTiles(try XCTUnwrap(out["tiles"])), try TilePlan(tile: 512, overlap: 64))
    XCTAssertEqual(TileNode().validate(params: NodeParams(["tile": .int(1024), "overlap": .int(256)])), [])
    XCTAssertEqual(TileNode().validate(params: NodeParams(["tile": .int(1004), "overlap": .int(256)])).count, 1)
    XCTAssertEqual(TileNode().validate(params: NodeParams(["tile": .int(128), "overlap": .int(128)])).count, 1)
  }
}
