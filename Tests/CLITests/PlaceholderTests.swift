import XCTest

@testable import cogflow

final class PlaceholderTests: XCTestCase {
  func testTargetLinks() {}
}
