import Foundation
import XCTest

@testable import Workflow

/// Golden tests of the validation messages: the expected text lives next to the workflow in
/// Tests/Fixtures/workflow/*.expected and was checked by hand against the comments in each YAML file.
final class ValidationTests: XCTestCase {
  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/workflow")

  func golden(_ name: String, overrides: [String] = []) throws {
    let path = Self.fixtures.appendingPathComponent("\(name).yaml").path
    let found = diagnostics(path, ResolveOptions(overrides: overrides)).map(\.description)
      .map { $0.replacingOccurrences(of: Self.fixtures.path + "/", with: "") }
    let expectedText = try String(
      contentsOf: Self.fixtures.appendingPathComponent("\(name).expected"), encoding: .utf8)
    let expected = expectedText.split(separator: "\n").map(String.init)
    XCTAssertEqual(found, expected, "\n" + found.joined(separator: "\n"))
  }

  func testInvalidGolden() throws { try golden("invalid", overrides: ["nothing=1", "j.valu=2"]) }

  func testCycleGolden() throws { try golden("cycle") }

  func testDemoValidates() throws {
    let wf = try resolve(Self.fixtures.appendingPathComponent("toy-demo.yaml").path)
    XCTAssertEqual(wf.nodes.count, 8)
  }

  func testStructuralErrors() {
    let dir = TempDir()
    let path = dir.write(
      "s.yaml",
      """
      cogflow: 2
      nodez: {}
      params:
        p: { type: int }
        q: { type: vector, default: 1 }
      nodes:
        a: toy.add
        b: { type: toy.add, with: [1, 2], colour: red }
        c: { type: toy.concat, in: { text: "not an edge" } }
        d: { use: nothere }
      """)
    let found = diagnostics(path).map(\.description).map { $0.replacingOccurrences(of: path, with: "s.yaml") }
    XCTAssertEqual(
      found,
      [
        "s.yaml:1:10: error: unsupported schema version 2: this cogflow reads version 1",
        "s.yaml:2:1: error: unknown top-level key 'nodez' (expected one of: cogflow, description, include, matrix, models, name, nodes, params, templates)",
        "s.yaml:4:3: error: parameter 'p' has no default and no --set p=… value",
        "s.yaml:5:14: error: unknown parameter type 'vector' (expected int, float, string, bool, model, file, list[int|float|string|bool])",
        "s.yaml:7:6: error: node 'a' must be a mapping with 'type:'",
        "s.yaml:8:29: error: 'with' of node 'b' must be a mapping",
        "s.yaml:8:37: error: unknown field 'colour' in node 'b' (expected doc, foreach, in, type, use, with)",
        "s.yaml:9:38: error: node 'c' input 'text': 'not an edge' is not node.port (write { value: … } for a constant)",
        "s.yaml:10:3: error: node 'd' has no 'type' (and no 'use:' template that gives one)",
        "s.yaml:10:13: error: node 'd': unknown template 'nothere' (templates: )",
      ])
  }
}
