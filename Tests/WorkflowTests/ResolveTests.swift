import XCTest

@testable import Workflow

final class ResolveTests: XCTestCase {
  func testParamsDefaultsSetAndInterpolation() throws {
    let dir = TempDir()
    let path = dir.write(
      "w.yaml",
      """
      cogflow: 1
      name: t
      params:
        x: { type: int, default: 3, min: 0, max: 10 }
        f: { type: float, default: 1 }
        word: hi
      nodes:
        a: { type: toy.add, with: { value: $x } }
        c: { type: toy.concat, in: { text: $word }, with: { suffix: "-${x}-$$" } }
      """)
    var wf = try resolve(path)
    XCTAssertEqual(wf.params["x"], .int(3))
    XCTAssertEqual(wf.params["f"], .float(1), "an int default of a float parameter becomes a float")
    XCTAssertEqual(wf.node("a")?.params.values["value"], .int(3))
    XCTAssertEqual(wf.node("c")?.params.values["suffix"], .string("-3-$"))
    XCTAssertEqual(wf.node("c")?.params.values["mode"], .string("plain"), "defaults are filled in")
    guard case .literal(let artifact)? = wf.node("c")?.inputs["text"] else { return XCTFail("literal input expected") }
    XCTAssertEqual(artifact.text, "hi")

    wf = try resolve(path, ResolveOptions(overrides: ["x=7", "c.mode=upper"]))
    XCTAssertEqual(wf.node("a")?.params.values["value"], .int(7))
    XCTAssertEqual(wf.node("c")?.params.values["mode"], .string("upper"))

    let bad = diagnostics(path, ResolveOptions(overrides: ["x=11", "y=1", "a.nope=2", "zz.value=1"]))
    let text = bad.map(\.description).joined(separator: "\n")
    XCTAssertTrue(text.contains("--set x: 11 is above the maximum 10"), text)
    XCTAssertTrue(text.contains("--set 'y=1': the workflow has no parameter 'y'"), text)
    XCTAssertTrue(text.contains("--set 'a.nope=2': node 'a' has no parameter 'nope'"), text)
    XCTAssertTrue(text.contains("--set 'zz.value=1': there is no node 'zz'"), text)
    XCTAssertEqual(bad.count, 4, "a bad value is reported once, not again where it is used: \(text)")
    XCTAssertEqual(
      diagnostics(path, ResolveOptions(overrides: ["x=abc"])).map(\.description),
      ["error: --set x: expected int, found string \"abc\""])
  }

  func testIncludeAndTemplates() throws {
    let dir = TempDir()
    dir.write(
      "lib/common.yaml",
      """
      params:
        base: 5
      templates:
        adder: { type: toy.add, with: { value: $base } }
      nodes:
        shared: { use: adder }
      """)
    let path = dir.write(
      "main.yaml",
      """
      cogflow: 1
      include: lib/common.yaml
      params:
        base: 9
      nodes:
        mine: { use: adder, in: { a: shared.out }, with: { value: 1 } }
      """)
    let wf = try resolve(path)
    XCTAssertEqual(wf.node("shared")?.params.values["value"], .int(9), "the including file overrides the default")
    XCTAssertEqual(wf.node("mine")?.params.values["value"], .int(1), "node fields override the template")
    XCTAssertEqual(wf.node("mine")?.inputs["a"], .edge(node: "shared", port: "out"))
    XCTAssertEqual(wf.nodes.map(\.id), ["shared", "mine"])
  }

  func testMatrixExpandsOnlyNodesThatDependOnTheVariables() throws {
    let dir = TempDir()
    let path = dir.write(
      "m.yaml",
      """
      cogflow: 1
      params:
        prompts: { type: "list[string]", default: ["a cat", "a dog"] }
        prompt: { type: string, default: "" }
      matrix:
        prompt: $prompts
        seed: [1, 2, 3]
      nodes:
        enc: { type: toy.concat, in: { text: $prompt } }
        n:   { type: toy.length, in: { text: enc.out } }
        s:   { type: toy.add, in: { a: n.out }, with: { value: $seed } }
        k:   { type: toy.add, with: { value: 1 } }
        f:   { type: toy.add, foreach: { v: [10, 20] }, in: { a: k.out }, with: { value: $v } }
      """)
    let wf = try resolve(path)
    let ids = Set(wf.nodes.map(\.id))
    XCTAssertEqual(wf.nodes.filter { $0.baseID == "enc" }.count, 2, "enc varies over prompt only")
    XCTAssertEqual(wf.nodes.filter { $0.baseID == "s" }.count, 6)
    XCTAssertEqual(wf.nodes.filter { $0.baseID == "k" }.count, 1)
    XCTAssertEqual(wf.nodes.filter { $0.baseID == "f" }.count, 2)
    XCTAssertTrue(
      ids.contains("enc[prompt=#0]") && ids.contains("s[prompt=#1,seed=3]") && ids.contains("f[v=20]"), "\(ids)")
    XCTAssertEqual(wf.node("s[prompt=#1,seed=3]")?.inputs["a"], .edge(node: "n[prompt=#1]", port: "out"))
    XCTAssertEqual(wf.node("s[prompt=#1,seed=3]")?.params.values["value"], .int(3))

    // --set pins a matrix variable to one value.
    let pinned = try resolve(path, ResolveOptions(overrides: ["seed=2"]))
    XCTAssertEqual(pinned.nodes.filter { $0.baseID == "s" }.count, 2)
  }

  func testTargetsKeepAncestorsOnly() throws {
    let dir = TempDir()
    let path = dir.write(
      "t.yaml",
      """
      cogflow: 1
      nodes:
        a: { type: toy.add }
        b: { type: toy.add, in: { a: a.out } }
        c: { type: toy.add, in: { a: a.out } }
      """)
    let wf = try resolve(path, ResolveOptions(targets: ["b"]))
    XCTAssertEqual(wf.nodes.map(\.id), ["a", "b"])
    XCTAssertEqual(
      diagnostics(path, ResolveOptions(targets: ["zz"])).map(\.description), ["error: --target 'zz': no such node"])
  }

  func testModelsResolveAgainstModelsDirectory() throws {
    let dir = TempDir()
    dir.write("models/m/w1.bin", "abc")
    dir.write("models/m/sub/w2.bin", "de")
    let path = dir.write(
      "w.yaml",
      """
      cogflow: 1
      models:
        mm: m
      nodes:
        a: { type: toy.model, with: { model: mm } }
      """)
    let wf = try resolve(path, ResolveOptions(modelsDirectory: dir.path("models")))
    let model = try XCTUnwrap(wf.node("a")?.params.models["model"])
    XCTAssertEqual(model.files.map { String($0.dropFirst(model.path.count + 1)) }, ["sub/w2.bin", "w1.bin"])
    let missing = diagnostics(path)
    XCTAssertEqual(missing.count, 1)
    XCTAssertTrue(
      missing[0].description.hasPrefix("\(path):3:7: error: model 'mm': 'm' not found"), missing[0].description)
  }
}

final class ResolveErrorTests: XCTestCase {
  func testIncludeCycleAndMissingInclude() {
    let dir = TempDir()
    dir.write("b.yaml", "include: a.yaml\nnodes:\n  nb: { type: toy.add }\n")
    let a = dir.write("a.yaml", "cogflow: 1\ninclude: [b.yaml, nope.yaml]\nnodes:\n  na: { type: toy.add }\n")
    let found = diagnostics(a).map(\.description)
    XCTAssertEqual(found.count, 2, "\(found)")
    XCTAssertTrue(
      found.contains { $0.hasSuffix("b.yaml:1:10: error: include cycle: 'a.yaml' is already being read") }, "\(found)")
    XCTAssertTrue(found.contains { $0.contains("a.yaml:2:19: error: included file 'nope.yaml' not found") }, "\(found)")
  }

  func testYAMLSyntaxErrorIsADiagnostic() {
    let dir = TempDir()
    let path = dir.write("bad.yaml", "cogflow: 1\nnodes:\n  a: { type: toy.add\n  b: 3\n")
    let found = diagnostics(path)
    XCTAssertEqual(found.count, 1)
    XCTAssertEqual(found.first?.location?.file, path)
    XCTAssertEqual(found.first?.location?.line, 4)
    XCTAssertTrue(found.first?.message.hasPrefix("YAML syntax:") ?? false, "\(found)")
  }

  func testMatrixAndForeachErrors() {
    let dir = TempDir()
    let path = dir.write(
      "m.yaml",
      """
      cogflow: 1
      params: { seed: { type: int, default: 0, min: 0 } }
      matrix: { seed: [1, -2], other: 5 }
      nodes:
        a: { type: toy.add, foreach: { seed: [1] } }
      """)
    let found = diagnostics(path).map(\.description).map { $0.replacingOccurrences(of: path, with: "m.yaml") }
    XCTAssertEqual(
      found,
      [
        "m.yaml:3:17: error: matrix 'seed': -2 is below the minimum 0",
        "m.yaml:3:33: error: matrix 'other' must be a non-empty list, found 5",
        "m.yaml:5:34: error: foreach variable 'seed' of node 'a' is already defined",
      ])
  }
}
