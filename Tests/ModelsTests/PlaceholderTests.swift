import XCTest

@testable import Models

final class PlaceholderTests: XCTestCase {
  func testTargetLinks() {}
}
