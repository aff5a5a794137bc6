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

  func testSaveImagePathSubstitution() throws {
    let params: [String: Value] = ["seed": .int(7), "size": .int(512), "prompt": .string("a fox")]
    XCTAssertEqual(
      try SaveImageNode.substitute("out/{name}-{seed}-{size}.png", name: "relay-1024", node: "save", params: params),
      "out/relay-1024-7-512.png")
    XCTAssertEqual(try SaveImageNode.substitute("{node}{{x}}.png", name: "n", node: "save", params: [:]), "save{x}.png")
    XCTAssertThrowsError(try SaveImageNode.substitute("{nope}.png", name: "n", node: "s", params: params)) { error in
      XCTAssertTrue("\(error)".contains("{nope}"), "\(error)")
    }
    XCTAssertThrowsError(try SaveImageNode.substitute("{seed", name: "n", node: "s", params: params))
    XCTAssertEqual(SaveImageNode().validate(params: NodeParams(["path": .string("a{b")])).count, 1)
  }

  func testTileNodeValidatesItsPlan() {
    XCTAssertEqual(TileNode().validate(params: NodeParams(["tile": .int(1024), "overlap": .int(256)])), [])
    XCTAssertEqual(TileNode().validate(params: NodeParams(["tile": .int(1004), "overlap": .int(256)])).count, 1)
  }
}
