import XCTest

@testable import Nodes

final class PlaceholderTests: XCTestCase {
  func testTargetLinks() {}
}
