import Foundation
import XCTest

@testable import Nodes
@testable import Workflow

/// prompt-expand against the loopback server of Tests/tools/llm_test_server.py (started and stopped by each
/// test): the request field by field, retries, bounds, timeouts, bad answers, key safety, caching, pass-through,
/// concurrency and cancellation.
final class PromptExpandTests: XCTestCase {
  static let secret = "sk-cogflow-TEST-5ecret-0123456789"

  /// Fast settings for tests: short waits everywhere.
  func fast(_ server: LLMTestServer, _ extra: [String: Value] = [:]) -> [String: Value] {
    var with: [String: Value] = [
      "base-url": .string(server.baseURL), "model": .string("test-model"), "retry-delay": .float(0.01),
      "read-timeout": .float(10), "total-timeout": .float(20),
    ]
    for (k, v) in extra { with[k] = v }
    return with
  }

  func error(_ body: () throws -> Any) -> String {
    do {
      _ = try body()
      XCTFail("expected an error")
      return ""
    } catch {
      return "\(error)"
    }
  }

  // MARK: success and the request

  func testSuccessCleansTheAnswerAndSendsTheOfficialRequest() throws {
    let server = try LLMTestServer(["default": ["kind": "ok", "content": "\n  A red fox,\n\nin  snow.\t \n"]])
    let out = try runExpand(
      "  a red fox \n", with: fast(server), environment: ["COGFLOW_LLM_KEY": Self.secret])
    XCTAssertEqual(out.text, "A red fox, in snow.", "official clean_string: \\n → space, strip, runs → one space")
    XCTAssertNil(out.notCached)

    let requests = server.requests
    XCTAssertEqual(requests.count, 1)
    let request = try XCTUnwrap(requests.first)
    XCTAssertEqual(request["path"] as? String, "/v1/chat/completions")
    let headers = (request["headers"] as? [String: String]) ?? [:]
    let lower = Dictionary(uniqueKeysWithValues: headers.map { ($0.key.lowercased(), $0.value) })
    XCTAssertEqual(lower["authorization"], "Bearer \(Self.secret)")
    XCTAssertEqual(lower["content-type"], "application/json")

    // Field by field against the template resource file (read here independently of the node's copy).
    let resource = try XCTUnwrap(
      JSONSerialization.jsonObject(
        with: Data(contentsOf: expandRepoRoot.appendingPathComponent("Nodes/Resources/cogview3-prompt-template.json")))
        as? [String: Any])
    let body = try XCTUnwrap(request["body"] as? [String: Any])
    XCTAssertEqual(
      Set(body.keys), ["model", "messages", "temperature", "top_p", "max_tokens", "stream"], "no seed unless asked")
    XCTAssertEqual(body["model"] as? String, "test-model")
    XCTAssertEqual(body["temperature"] as? Double, 0.01)
    XCTAssertEqual(body["top_p"] as? Double, 0.7)
    XCTAssertEqual(body["max_tokens"] as? Int, 300)
    XCTAssertEqual(body["stream"] as? Bool, false)
    let sampling = try XCTUnwrap(resource["sampling"] as? [String: Any])
    XCTAssertEqual(sampling["temperature"] as? Double, body["temperature"] as? Double)
    XCTAssertEqual(sampling["top_p"] as? Double, body["top_p"] as? Double)
    XCTAssertEqual(sampling["max_tokens"] as? Int, body["max_tokens"] as? Int)

    let messages = try XCTUnwrap(body["messages"] as? [[String: String]])
    let examples = try XCTUnwrap(resource["examples"] as? [[String: String]])
    XCTAssertEqual(examples.count, 4)
    XCTAssertEqual(messages.count, 2 + 2 * examples.count)
    XCTAssertEqual(messages[0], ["role": "system", "content": try XCTUnwrap(resource["system"] as? String)])
    for (i, example) in examples.enumerated() {
      XCTAssertEqual(messages[1 + 2 * i], ["role": "user", "content": example["user"] ?? "?"])
      XCTAssertEqual(messages[2 + 2 * i], ["role": "assistant", "content": example["assistant"] ?? "?"])
    }
    let userTemplate = try XCTUnwrap(resource["user_template"] as? String)
    XCTAssertEqual(
      messages.last, ["role": "user", "content": userTemplate.replacingOccurrences(of: "{prompt}", with: "a red fox")])
    XCTAssertEqual(
      messages.last?["content"], "Create an imaginative image descriptive caption for the user input : \"a red fox\"")
  }

  func testSeedIsSentWhenSet() throws {
    let server = try LLMTestServer([:])
    let out = try runExpand("owl", with: fast(server, ["seed": .int(7)]))
    XCTAssertEqual(out.text, "expanded: owl")
    let body = try XCTUnwrap(server.requests.first?["body"] as? [String: Any])
    XCTAssertEqual(body["seed"] as? Int, 7)
    let headers = (server.requests.first?["headers"] as? [String: String]) ?? [:]
    XCTAssertFalse(headers.keys.contains { $0.lowercased() == "authorization" }, "no key set: none sent")
  }

  // MARK: retries and bounds

  func test429WithRetryAfterThenSuccess() throws {
    let server = try LLMTestServer([
      "responses": [
        ["kind": "status", "status": 429, "headers": ["Retry-After": "1"], "body": "{\"error\":\"slow down\"}"]
      ]
    ])
    let log = ExpandLog()
    let out = try runExpand("owl", with: fast(server), log: log)
    XCTAssertEqual(out.text, "expanded: owl")
    let requests = server.requests.sorted { ($0["index"] as? Int ?? 0) < ($1["index"] as? Int ?? 0) }
    XCTAssertEqual(requests.count, 2)
    let gap = (requests[1]["start"] as? Double ?? 0) - (requests[0]["end"] as? Double ?? 0)
    XCTAssertGreaterThanOrEqual(gap, 0.9, "Retry-After: 1 was honoured (retry-delay alone is 0.01 s)")
    XCTAssertTrue(
      log.all.contains { $0.contains("HTTP 429") && $0.contains("retrying in 1.00 s") }, "\(log.all)")
  }

  func testRepeated500StopsAtTheRetryBoundAndAtTheTimeBound() throws {
    let server = try LLMTestServer(["default": ["kind": "status", "status": 500, "body": "boom"]])
    let byCount = error { try runExpand("owl", with: self.fast(server, ["retries": .int(2)])) }
    XCTAssertTrue(byCount.hasPrefix("gave up after 3 attempt(s)"), byCount)
    XCTAssertTrue(byCount.contains("HTTP 500"), byCount)
    XCTAssertEqual(server.requests.count, 3)

    let started = Date()
    let byTime = error {
      try runExpand(
        "owl", with: self.fast(server, ["retries": .int(20), "retry-delay": .float(0.2), "total-timeout": .float(1.5)]))
    }
    let elapsed = Date().timeIntervalSince(started)
    XCTAssertTrue(byTime.contains("total-timeout"), byTime)
    XCTAssertLessThan(elapsed, 1.5 + 2, "stopped near the bound")
    XCTAssertLessThan(server.requests.count, 3 + 21, "stopped before using every retry")
  }

  func testServerThatNeverAnswersTimesOut() throws {
    let server = try LLMTestServer(["default": ["kind": "hang"]])
    let started = Date()
    let message = error {
      try runExpand(
        "owl",
        with: self.fast(server, ["retries": .int(0), "connect-timeout": .float(0.3), "read-timeout": .float(1.0)]))
    }
    let elapsed = Date().timeIntervalSince(started)
    XCTAssertTrue(
      message.contains("read-timeout 1.0 s"), "connected (so not a connect timeout), then no answer: \(message)")
    XCTAssertGreaterThanOrEqual(elapsed, 0.9)
    XCTAssertLessThan(elapsed, 5)
  }

  func testSilentHostHitsTheConnectTimeout() throws {
    let server = try LLMTestServer(["silent": true])
    let started = Date()
    let message = error {
      try runExpand(
        "owl",
        with: self.fast(server, ["retries": .int(0), "connect-timeout": .float(0.5), "read-timeout": .float(10)]))
    }
    let elapsed = Date().timeIntervalSince(started)
    XCTAssertTrue(message.contains("within connect-timeout 0.5 s"), message)
    XCTAssertGreaterThanOrEqual(elapsed, 0.45)
    XCTAssertLessThan(elapsed, 4)
  }

  func testNothingListeningIsANetworkErrorRetriedThenReported() throws {
    // A port that was free a moment ago: connection refused.
    let server = try LLMTestServer([:])
    let url = server.baseURL
    server.stop()
    let message = error {
      try runExpand(
        "owl", with: ["base-url": .string(url), "model": .string("m"), "retries": .int(1), "retry-delay": .float(0.01)])
    }
    XCTAssertTrue(message.hasPrefix("gave up after 2 attempt(s)"), message)
    XCTAssertTrue(message.contains("cannot connect to 127.0.0.1:\(server.port)"), message)
  }

  // MARK: bad answers (not retried)

  func testBadAnswersGiveClearErrors() throws {
    let cases: [(entry: [String: Any], expect: String)] = [
      (
        ["kind": "raw", "status": 200, "content_type": "application/json", "body": "{\"choices\": [oops"],
        "malformed JSON"
      ),
      (
        ["kind": "raw", "status": 200, "content_type": "text/html", "body": "<html>hi</html>"], "content type text/html"
      ),
      (["kind": "ok", "no_choices": true], "no choices"),
      (["kind": "ok", "content": "", "refusal": "I can't help with that."], "refused: I can't help with that."),
      (["kind": "ok", "content": " \n\t \n"], "empty expansion"),
      (["kind": "ok", "content": "A long", "finish_reason": "length"], "cut at max-tokens 300 (finish_reason length)"),
      (["kind": "status", "status": 401, "body": "{\"error\":\"bad key\"}"], "set $COGFLOW_LLM_KEY"),
      (["kind": "status", "status": 403, "body": ""], "HTTP 403"),
      (["kind": "status", "status": 404, "body": "not found"], "wrong base-url"),
      (["kind": "status", "status": 400, "body": "bad request"], "HTTP 400"),
    ]
    let server = try LLMTestServer(["responses": cases.map(\.entry)])
    for (i, item) in cases.enumerated() {
      let message = error { try runExpand("owl", with: self.fast(server)) }
      XCTAssertTrue(message.contains(item.expect), "case \(i): \(message)")
      XCTAssertEqual(server.requests.count, i + 1, "case \(i) was not retried")
    }
  }

  func testOversizedAnswerIsRefused() throws {
    let server = try LLMTestServer([
      "default": ["kind": "raw", "status": 200, "content_type": "application/json", "body_repeat": ["x", 17 << 20]]
    ])
    let message = error { try runExpand("owl", with: self.fast(server)) }
    XCTAssertTrue(message.contains("more than 16 MiB"), message)
  }

  func testPassthroughCoversServerFailuresNotConfiguration() throws {
    let server = try LLMTestServer(["default": ["kind": "status", "status": 500, "body": "down"]])
    let out = try runExpand(
      "owl", with: fast(server, ["on-failure": .string("passthrough"), "retries": .int(0)]))
    XCTAssertEqual(out.text, "owl")
    XCTAssertTrue(out.notCached?.contains("HTTP 500") ?? false, "\(String(describing: out.notCached))")
    let config = error {
      try runExpand("owl", with: ["on-failure": .string("passthrough"), "base-url": .string(server.baseURL)])
    }
    XCTAssertTrue(config.contains("no model"), "a configuration error is not passed through: \(config)")
  }

  func testConfigurationErrors() throws {
    let noModel = error { try runExpand("owl", with: ["base-url": .string("http://127.0.0.1:9/v1")]) }
    XCTAssertTrue(noModel.contains("$COGFLOW_LLM_MODEL"), noModel)
    let noURL = error { try runExpand("owl", with: ["model": .string("m")]) }
    XCTAssertTrue(noURL.contains("$COGFLOW_LLM_URL"), noURL)
    let withUser = error {
      try runExpand(
        "owl", with: ["model": .string("m"), "base-url": .string("http://u:\(Self.secret)@127.0.0.1:9/v1")])
    }
    XCTAssertTrue(withUser.contains("must not hold a user"), withUser)
    XCTAssertFalse(withUser.contains(Self.secret))
    let keyAsName = error {
      try runExpand(
        "owl",
        with: [
          "model": .string("m"), "base-url": .string("http://127.0.0.1:9/v1"), "api-key-env": .string(Self.secret),
        ])
    }
    XCTAssertTrue(keyAsName.contains("NAME of an environment variable"), keyAsName)
    XCTAssertFalse(keyAsName.contains(Self.secret))
    let unset = error {
      try runExpand(
        "owl",
        with: ["model": .string("m"), "base-url": .string("http://127.0.0.1:9/v1"), "api-key-env": .string("NOPE_KEY")])
    }
    XCTAssertTrue(unset.contains("NOPE_KEY"), unset)
  }

  func testValidationChecksTheFormBeforeARun() {
    let node = PromptExpandNode(environment: [:])
    func params(_ with: [String: Value]) -> NodeParams {
      var values: [String: Value] = [:]
      for param in node.spec.params { values[param.name] = param.defaultValue }
      for (name, value) in with { values[name] = value }
      return NodeParams(values)
    }
    XCTAssertEqual(node.validate(params: params([:])), [], "server and model may come at run time")
    let bad = params(["base-url": .string("ftp://h/v1"), "api-key-env": .string(Self.secret)])
    let problems = node.validate(params: bad)
    XCTAssertEqual(problems.count, 2, "\(problems)")
    XCTAssertTrue(problems[0].hasPrefix("base-url: "), "\(problems)")
    XCTAssertTrue(problems[1].hasPrefix("api-key-env: "), "\(problems)")
    XCTAssertFalse(problems.joined().contains(Self.secret))
    var off = bad
    off.values["mode"] = .string("off")
    XCTAssertEqual(node.validate(params: off), [], "mode off needs no server")
  }

  func testEnvironmentSuppliesURLModelAndKey() throws {
    let server = try LLMTestServer([:])
    let env = ["COGFLOW_LLM_URL": server.baseURL, "COGFLOW_LLM_MODEL": "env-model", "OPENAI_API_KEY": "sk-fallback"]
    XCTAssertEqual(try runExpand("owl", with: [:], environment: env).text, "expanded: owl")
    var env2 = env
    env2["MY_KEY"] = "sk-named"
    _ = try runExpand("owl", with: ["api-key-env": .string("MY_KEY")], environment: env2)
    let requests = server.waitForRequests(2)
    XCTAssertEqual((requests[0]["body"] as? [String: Any])?["model"] as? String, "env-model")
    let auth = requests.map { r in
      ((r["headers"] as? [String: String]) ?? [:]).first { $0.key.lowercased() == "authorization" }?.value
    }
    XCTAssertEqual(auth, ["Bearer sk-fallback", "Bearer sk-named"])
  }

  // MARK: cancellation and mode off

  func testCancellationStopsAHangingRequest() throws {
    let server = try LLMTestServer(["default": ["kind": "hang"]])
    let token = CancellationToken()
    DispatchQueue.global().asyncAfter(deadline: .now() + 0.5) { token.cancel() }
    let started = Date()
    XCTAssertThrowsError(try runExpand("owl", with: fast(server, ["read-timeout": .float(60)]), cancellation: token)) {
      XCTAssertTrue($0 is CancelledError, "\($0)")
    }
    XCTAssertLessThan(Date().timeIntervalSince(started), 3)
  }

  func testModeOffPassesThroughWithoutACall() throws {
    let out = try runExpand("  owl  ", with: ["mode": .string("off")])
    XCTAssertEqual(out.text, "  owl  ")
    XCTAssertNotNil(out.notCached)
  }
}
