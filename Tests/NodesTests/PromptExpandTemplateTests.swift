import Foundation
import XCTest

@testable import Nodes
@testable import Workflow

/// The official template (resource file vs compiled-in copy), template files, the official text clean-up, and
/// what enters prompt-expand's key.
final class PromptExpandTemplateTests: XCTestCase {
  func resource() throws -> [String: Any] {
    let url = expandRepoRoot.appendingPathComponent("Nodes/Resources/cogview3-prompt-template.json")
    return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
  }

  func testCompiledTemplateAgreesWithTheResourceFile() throws {
    let json = try resource()
    let official = PromptTemplate.official
    XCTAssertEqual(official.system, json["system"] as? String)
    XCTAssertEqual(official.userTemplate, json["user_template"] as? String)
    let examples = try XCTUnwrap(json["examples"] as? [[String: String]])
    XCTAssertEqual(official.examples.map(\.user), examples.map { $0["user"] ?? "" })
    XCTAssertEqual(official.examples.map(\.assistant), examples.map { $0["assistant"] ?? "" })
    XCTAssertTrue((json["provenance"] as? String)?.contains("prompt_optimize.py") ?? false)
    // The same file read through the template loader (what `template: FILE` uses) gives the same template.
    XCTAssertEqual(
      try PromptTemplate.load(
        path: expandRepoRoot.appendingPathComponent("Nodes/Resources/cogview3-prompt-template.json").path), official)
  }

  /// The official template enters keys through the node's version: changing the text must bump it.
  /// Digest: SHA-256 of system, each example's user and assistant, and user_template joined by NUL, computed by
  /// Python's hashlib from the JSON file when version 1 was set.
  func testTemplateChangeNeedsAVersionBump() {
    let t = PromptTemplate.official
    let parts = [t.system] + t.examples.flatMap { [$0.user, $0.assistant] } + [t.userTemplate]
    XCTAssertEqual(PromptExpandNode.version, 1)
    XCTAssertEqual(
      SHA256.hash(parts.joined(separator: "\u{0}")),
      "031d7b4d7d1e8e2b3fe77c622013978649c9c6003e68861ac1b27502e66ac3e7",
      "the official template changed: bump PromptExpandNode.version and update this digest")
  }

  func testMessagesFollowTheOfficialOrder() {
    let messages = PromptTemplate.official.messages(for: "  {prompt} and a cat\n")
    XCTAssertEqual(
      messages.map(\.role), ["system"] + Array(repeating: ["user", "assistant"], count: 4).flatMap { $0 } + ["user"])
    XCTAssertEqual(
      messages.last?.content,
      "Create an imaginative image descriptive caption for the user input : \"{prompt} and a cat\"",
      "stripped like the official script, inserted once")
  }

  /// Expected values from Python 3 running the official `clean_string` on the same inputs.
  func testCleanMatchesTheOfficialCleanString() {
    let cases: [(String, String)] = [
      ("a\n\nb", "a b"),
      (" \n x \t y\tz \u{3000}\u{3000}w \r\n", "x y\tz w"),
      ("line\r\nnext", "line next"),
      ("\u{a0}lead and trail\u{a0} ", "lead and trail"),
      ("\u{1c}\u{1d}q", "q"),
      ("one\u{2003}two", "one\u{2003}two"),
    ]
    for (input, expected) in cases {
      XCTAssertEqual(PromptExpandText.clean(input), expected, "\(input.debugDescription)")
    }
  }

  func testTemplateFilesAreCheckedWithClearErrors() throws {
    let dir = ExpandTempDir()
    let good = dir.write(
      "t.json",
      #"{"system": "be brief", "examples": [{"user": "u", "assistant": "a"}], "user_template": "Say: {prompt}"}"#)
    let template = try PromptTemplate.load(path: good)
    XCTAssertEqual(template.messages(for: "owl").map(\.content), ["be brief", "u", "a", "Say: owl"])
    let cases = [
      ("nojson.json", "{", "not valid JSON"),
      ("twice.json", #"{"system": "s", "user_template": "{prompt} {prompt}"}"#, "exactly once (found 2)"),
      ("nosys.json", #"{"user_template": "{prompt}"}"#, "field 'system'"),
      ("badex.json", #"{"system": "s", "user_template": "{prompt}", "examples": [{"user": 1}]}"#, "examples[0].user"),
    ]
    for (name, text, expect) in cases {
      let path = dir.write(name, text)
      XCTAssertThrowsError(try PromptTemplate.load(path: path)) {
        XCTAssertTrue("\($0)".contains(expect) && "\($0)".contains(path), "\($0)")
      }
    }
    XCTAssertThrowsError(try PromptTemplate.load(path: dir.path("missing.json"))) {
      XCTAssertTrue("\($0)".contains("cannot read"), "\($0)")
    }
  }

  func testSpecAndWhatEntersTheKey() {
    let spec = PromptExpandNode(environment: ["COGFLOW_LLM_MODEL": "m", "COGFLOW_LLM_URL": "http://h/v1"]).spec
    XCTAssertEqual(spec.problems(), [])
    XCTAssertEqual(spec.resource, .io)
    XCTAssertEqual(
      Set(spec.params.filter(\.affectsKey).map(\.name)),
      ["mode", "model", "template", "temperature", "top-p", "max-tokens", "seed"])
    XCTAssertEqual(spec.param("model")?.defaultValue, .string("m"), "the model default comes from the environment")
    XCTAssertEqual(spec.param("base-url")?.defaultValue, .string("http://h/v1"))
    XCTAssertEqual(spec.param("temperature")?.defaultValue, .float(0.01))
    XCTAssertEqual(spec.param("top-p")?.defaultValue, .float(0.7))
    XCTAssertEqual(spec.param("max-tokens")?.defaultValue, .int(300))
  }

  func testRequestBodyIsCompactJSONInAFixedOrder() throws {
    let request = ChatRequest(
      model: "m\"x", messages: [("user", "a\nb\u{1}")], temperature: 0.01, topP: 0.7, maxTokens: 300, seed: 3)
    XCTAssertEqual(
      String(decoding: request.body, as: UTF8.self),
      #"{"model":"m\"x","messages":[{"role":"user","content":"a\nb\u0001"}],"temperature":0.01,"top_p":0.7,"max_tokens":300,"stream":false,"seed":3}"#
    )
    XCTAssertEqual(ChatClient.parseRetryAfter("2"), 2)
    XCTAssertNil(ChatClient.parseRetryAfter("soon"))
    let date = ChatClient.parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT")
    XCTAssertEqual(date, 0, "a date in the past means no wait")
  }
}
