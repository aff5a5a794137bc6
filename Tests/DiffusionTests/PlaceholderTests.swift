import XCTest

@testable import Diffusion

final class PlaceholderTests: XCTestCase {
  func testTargetLinks() {}
}
