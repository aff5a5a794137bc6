import Foundation
import XCTest

@testable import Nodes
@testable import Workflow

final class TextEncodeTests: XCTestCase {
  func testContextShapeAndDeterminism() throws {
    let a = try NodeHarness.cond("a red fox")
    let context = try Artifacts.decodeCond(a)
    XCTAssertEqual(context.shape.prefix(2), [1, 225], "225 tokens, batch 1 (official §2.1)")
    XCTAssertEqual(try NodeHarness.cond("a red fox").bytes, a.bytes, "same text, same bytes")
    XCTAssertNotEqual(try NodeHarness.cond("a blue whale").bytes, a.bytes)
  }

  func testWrongModelKindIsAValidationError() throws {
    let params = NodeParams([:], models: ["model": try NodeHarness.model(NodeHarness.vae)])
    let problems = TextEncodeNode(pool: ModelPool()).validate(params: params)
    XCTAssertEqual(problems.count, 1)
    XCTAssertTrue(problems.first?.contains("expected a T5 encoder") ?? false, "\(problems)")
  }
}
