import Foundation
import XCTest

@testable import Nodes
@testable import Workflow

final class RegistryTests: XCTestCase {
  func testEveryNodeTypeIsRegisteredWithASoundSpec() {
    let registry = builtinRegistry()
    XCTAssertEqual(
      registry.names,
      [
        "base-sample", "decode", "encode-latent", "load-image", "load-latent", "load-text", "relay-sample",
        "save-image", "save-latent", "text-encode", "tile", "upsample",
      ])
    for name in registry.names {
      XCTAssertEqual(registry[name]?.spec.problems() ?? ["missing"], [], name)
    }
  }
}
