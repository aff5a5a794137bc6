import Foundation
import XCTest

@testable import Nodes
@testable import Workflow

final class RegistryTests: XCTestCase {
  func testEveryNodeTypeIsRegisteredWithASoundSpec() {
    let registry = builtinRegistry()
    let cogview3: Set = [
      "base-sample", "decode", "encode-latent", "load-image", "load-latent", "load-text", "relay-sample",
      "save-image", "save-latent", "text-encode", "tile", "upsample",
    ]
    XCTAssertTrue(cogview3.isSubset(of: registry.names), "missing: \(cogview3.subtracting(registry.names).sorted())")
    for name in registry.names {
      XCTAssertEqual(registry[name]?.spec.problems() ?? ["missing"], [], name)
    }
  }
}
