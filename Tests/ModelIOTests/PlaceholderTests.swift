import XCTest

@testable import ModelIO

final class PlaceholderTests: XCTestCase {
  func testTargetLinks() {}
}
