import XCTest

@testable import Workflow

final class PlaceholderTests: XCTestCase {
  func testTargetLinks() {}
}
