import Foundation
import ModelIO
import Tensor
import XCTest

@testable import Nodes
@testable import Workflow

final class SaveImageTests: XCTestCase {
  func testPathSubstitution() throws {
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

  func testWritesTruncatedPNGWithSoftwareChunkIntoNewFolders() throws {
    let dir = try Paths.temporaryFolder(self)
    let image = try Tensor(shape: [1, 3, 1, 2], data: [0.5, 1, 0.999, 0, 0.2, 0.7])
    _ = try NodeHarness.run(
      SaveImageNode(), ["image": try Artifacts.encodeImage(image)], ["path": .string(dir.path + "/a/b/{node}.png")])
    let png = try PNGImage.read(path: dir.path + "/a/b/n.png")
    XCTAssertEqual(png.samples, [127, 254, 51, 255, 0, 178], "⌊255·x⌋, interleaved RGB")
    XCTAssertNotNil(png.text("Software"))
  }
}
