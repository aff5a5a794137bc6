import XCTest

@testable import Workflow

final class YAMLTests: XCTestCase {
  func testLocationsOfKeysAndValues() throws {
    let text = """
      cogflow: 1
      nodes:
        a: { type: toy.add, with: { value: 3 } }
        b:
          type: "toy.mul"
          in: { a: a.out }
      """
    let root = try YAMLParser.parse(text, file: "w.yaml")
    let nodes = try XCTUnwrap(root["nodes"]?.pairs)
    XCTAssertEqual(nodes[0].key.location, SourceLocation(file: "w.yaml", line: 3, column: 3))
    let a = nodes[0].value
    XCTAssertEqual(a["type"]?.location.line, 3)
    XCTAssertEqual(a["type"]?.location.column, 14)
    XCTAssertEqual(a["with"]?["value"]?.location, SourceLocation(file: "w.yaml", line: 3, column: 38))
    let b = nodes[1].value
    XCTAssertEqual(b["type"]?.location, SourceLocation(file: "w.yaml", line: 5, column: 11))
    if case .scalar(let t, let quoted)? = b["type"]?.kind {
      XCTAssertEqual(t, "toy.mul")
      XCTAssertTrue(quoted)
    } else {
      XCTFail("type is not a scalar")
    }
    XCTAssertEqual(b["in"]?["a"]?.scalarText, "a.out")
  }

  func testScalarTypes() throws {
    let root = try YAMLParser.parse("a: 3\nb: 3.5\nc: '3'\nd: true\ne: ~\nf: [1, x]\ng: 1e3\n", file: "t")
    XCTAssertEqual(Value.from(root["a"]!), .int(3))
    XCTAssertEqual(Value.from(root["b"]!), .float(3.5))
    XCTAssertEqual(Value.from(root["c"]!), .string("3"))
    XCTAssertEqual(Value.from(root["d"]!), .bool(true))
    XCTAssertEqual(Value.from(root["e"]!), .null)
    XCTAssertEqual(Value.from(root["f"]!), .list([.int(1), .string("x")]))
    XCTAssertEqual(Value.from(root["g"]!), .float(1000))
  }

  func testAnchorsAndAliases() throws {
    let root = try YAMLParser.parse("base: &b { steps: 4 }\nother: *b\n", file: "t")
    XCTAssertEqual(root["other"]?["steps"]?.scalarText, "4")
    XCTAssertEqual(root["other"]?.location.line, 2)
  }

  func testSyntaxErrorHasLocation() {
    XCTAssertThrowsError(try YAMLParser.parse("a: [1, 2\nb: 3\n", file: "bad.yaml")) { error in
      let e = error as? YAMLError
      XCTAssertEqual(e?.location.file, "bad.yaml")
      XCTAssertEqual(e?.location.line, 2)
      XCTAssertTrue(e?.message.contains("YAML syntax") ?? false, "\(error)")
    }
  }

  func testCanonicalJSON() {
    XCTAssertEqual(Value.float(7).canonicalJSON, "7.0")
    XCTAssertEqual(Value.int(7).canonicalJSON, "7")
    XCTAssertEqual(Value.string("a\"b\n").canonicalJSON, "\"a\\\"b\\n\"")
    XCTAssertEqual(Value.list([.int(1), .bool(false)]).canonicalJSON, "[1,false]")
  }
}
