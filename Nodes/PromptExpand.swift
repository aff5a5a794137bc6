import Foundation
import Workflow

/// `prompt-expand` (text → text): CogView3's prompt expansion through any OpenAI-compatible chat server
/// (llama.cpp's server, Ollama, vLLM, a hosted API). Follows THUDM/CogView3 `prompt_optimize.py`
/// `upsample_prompt`: the official system instruction and four few-shot pairs, the final user turn in the
/// official wording, temperature 0.01, top_p 0.7, max_tokens 300, stream false, and the official cleaning
/// (newlines to spaces, strip, runs of whitespace to one space). Unlike the official script, a failure is an
/// error unless `on-failure: passthrough`, and a passed-through prompt is never stored as an expansion.
///
/// Key: the prompt, the template (the official one through `version`, a file through its digest), `model`,
/// `temperature`, `top-p`, `max-tokens`, `seed` and `mode`. The server address, the API key and the timeouts
/// are not in it: a rerun never calls the server, and the same model behind another address shares entries.
/// The API key comes only from the environment (`$COGFLOW_LLM_KEY`, then `OPENAI_API_KEY`, or the variable
/// named by `api-key-env`); no parameter holds it.
public struct PromptExpandNode: ValidatingNodeType {
  /// Bump when the official template or the request/cleaning changes.
  public static let version = 1

  public let spec: NodeTypeSpec
  private let environment: [String: String]
  private let gate = ConcurrencyGate()

  /// `environment` supplies the defaults of `base-url` and `model` (`$COGFLOW_LLM_URL`, `$COGFLOW_LLM_MODEL`)
  /// and the API key at run time.
  public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
    self.environment = environment
    spec = NodeTypeSpec(
      name: "prompt-expand", version: Self.version,
      doc: "Expands a short prompt into CogView3's long caption style with an OpenAI-compatible chat server"
        + " (official CogView3 template and sampling). Key: prompt, template, model and sampling parameters.",
      inputs: [PortSpec("text", "text", doc: "the short prompt")],
      outputs: [PortSpec("text", "text", doc: "the expanded prompt (or the prompt itself: mode off, passthrough)")],
      params: [
        ParamSpec(
          "mode", .choice(["on", "off"]), default: .string("on"),
          doc: "off passes the prompt through without a call and without a cache entry"),
        ParamSpec(
          "model", .string, default: .string(environment["COGFLOW_LLM_MODEL"] ?? ""),
          doc: "model name the server knows (default $COGFLOW_LLM_MODEL)"),
        ParamSpec(
          "base-url", .string, default: .string(environment["COGFLOW_LLM_URL"] ?? ""),
          doc: "API root, e.g. http://127.0.0.1:8080/v1 (default $COGFLOW_LLM_URL); not in the key",
          affectsKey: false),
        ParamSpec(
          "api-key-env", .string, default: .string(""),
          doc: "name of the environment variable holding the API key (default COGFLOW_LLM_KEY, then"
            + " OPENAI_API_KEY); the key itself is never a parameter", affectsKey: false),
        ParamSpec(
          "template", .file, default: .string(""),
          doc: "a template JSON file for other models (default: the official CogView3 template)"),
        ParamSpec("temperature", .float, default: .float(0.01), min: 0, max: 2, doc: "sampling temperature"),
        ParamSpec("top-p", .float, default: .float(0.7), min: 0, max: 1, doc: "nucleus sampling top_p"),
        ParamSpec("max-tokens", .int, default: .int(300), min: 1, max: 32768, doc: "answer length bound"),
        ParamSpec(
          "seed", .int, default: .int(-1), min: -1, max: Double(Int32.max),
          doc: "sent as `seed` when ≥ 0 (for servers that support it); -1 sends none"),
        ParamSpec(
          "on-failure", .choice(["error", "passthrough"]), default: .string("error"),
          doc: "passthrough: on failure use the prompt as is, marked in events and provenance, never cached",
          affectsKey: false),
        ParamSpec(
          "max-concurrent", .int, default: .int(2), min: 1, max: 64,
          doc: "at most this many requests at once across the run", affectsKey: false),
        ParamSpec(
          "connect-timeout", .float, default: .float(10), min: 0.05, max: 3600,
          doc: "seconds to open the TCP connection (checked before each attempt)", affectsKey: false),
        ParamSpec(
          "read-timeout", .float, default: .float(120), min: 0.05, max: 3600,
          doc: "seconds to wait for the answer of one attempt", affectsKey: false),
        ParamSpec(
          "total-timeout", .float, default: .float(300), min: 0.05, max: 86400,
          doc: "bound on all attempts and waits together", affectsKey: false),
        ParamSpec(
          "retries", .int, default: .int(4), min: 0, max: 20,
          doc: "retries on 429, 5xx and network errors", affectsKey: false),
        ParamSpec(
          "retry-delay", .float, default: .float(1), min: 0.001, max: 600,
          doc: "first backoff in seconds (doubles each retry, with jitter; Retry-After wins)", affectsKey: false),
      ],
      resource: .io)
  }

  public func run(inputs: NodeInputs, params: NodeParams, context: NodeContext) throws -> [String: Artifact] {
    let prompt = try inputs.required("text").text
    if try params.string("mode") == "off" {
      context.doNotCache("mode off: prompt passed through unexpanded")
      return ["text": Artifact(text: prompt)]
    }
    do {
      return ["text": Artifact(text: try expand(prompt, params: params, context: context))]
    } catch let error as PromptExpandError where error.isServerFailure {
      // Configuration errors (no model, a bad URL or template) always stop the node: only the server's failures
      // fall back.
      guard try params.string("on-failure") == "passthrough" else { throw error }
      context.log("expansion failed, passing the prompt through: \(error)")
      context.doNotCache("pass-through after a failed expansion: \(error)")
      return ["text": Artifact(text: prompt)]
    }
  }

  /// Checks what can be checked before a run: the form of `base-url` and `api-key-env`, and a `template` file.
  /// A missing server or model is reported when the node runs (a workflow with `mode: off`, or one that
  /// takes them from the environment of another machine, still validates).
  public func validate(params: NodeParams) -> [String] {
    guard (try? params.string("mode")) == "on" else { return [] }
    var out: [String] = []
    if let url = try? params.string("base-url"), !url.isEmpty {
      do { _ = try ChatEndpoint.parseBaseURL(url) } catch { out.append("base-url: \(error)") }
    }
    do { _ = try apiKey((try? params.string("api-key-env")) ?? "") } catch { out.append("api-key-env: \(error)") }
    if let path = params.files["template"] {
      do { _ = try PromptTemplate.load(path: path) } catch { out.append("template: \(error)") }
    }
    return out
  }

  /// The API key: from the variable `api-key-env` names, else `$COGFLOW_LLM_KEY`, else `OPENAI_API_KEY`;
  /// nil when none is set (local servers need none). Errors never show a value.
  func apiKey(_ variable: String) throws -> String? {
    if variable.isEmpty {
      return [environment["COGFLOW_LLM_KEY"], environment["OPENAI_API_KEY"]].compactMap { $0 }.first {
        !$0.isEmpty
      }
    }
    let isName =
      variable.count <= 128
      && variable.unicodeScalars.enumerated().allSatisfy { i, c in
        c == "_" || (c.isASCII && (c.properties.isAlphabetic || (i > 0 && ("0"..."9").contains(c))))
      }
    guard isName else {
      throw PromptExpandError.config(
        "api-key-env must be the NAME of an environment variable (letters, digits, _), not the key itself;"
          + " the value given is not shown")
    }
    guard let key = environment[variable], !key.isEmpty else {
      throw PromptExpandError.config("api-key-env names \(variable), which is not set or empty")
    }
    return key
  }

  private func expand(_ prompt: String, params: NodeParams, context: NodeContext) throws -> String {
    let model = try params.string("model")
    guard !model.isEmpty else {
      throw PromptExpandError.config("no model: set with: { model: … } or $COGFLOW_LLM_MODEL")
    }
    let template = try params.files["template"].map(PromptTemplate.load) ?? .official
    let endpoint = ChatEndpoint(
      baseURL: try ChatEndpoint.parseBaseURL(try params.string("base-url")),
      apiKey: try apiKey(try params.string("api-key-env")),
      connectTimeout: try params.double("connect-timeout"), readTimeout: try params.double("read-timeout"),
      totalTimeout: try params.double("total-timeout"), retries: try params.int("retries"),
      retryDelay: try params.double("retry-delay"), probeConnect: !ConnectProbe.proxyConfigured(environment))
    let seed = try params.int("seed")
    let request = ChatRequest(
      model: model, messages: template.messages(for: prompt), temperature: try params.double("temperature"),
      topP: try params.double("top-p"), maxTokens: try params.int("max-tokens"), seed: seed >= 0 ? seed : nil)
    let client = ChatClient(
      endpoint: endpoint, log: { context.log($0) }, isCancelled: { context.isCancelled })

    try gate.enter(limit: try params.int("max-concurrent"), isCancelled: { context.isCancelled })
    defer { gate.leave() }
    let cleaned = PromptExpandText.clean(try client.complete(request))
    guard !cleaned.isEmpty else {
      throw PromptExpandError.answer("the server returned an empty expansion")
    }
    return cleaned
  }
}

/// Bounds the requests in flight across all prompt-expand nodes of a registry (one run), so a matrix over
/// many prompts asks at most `max-concurrent` at once while other nodes keep the cores busy.
final class ConcurrencyGate: @unchecked Sendable {
  private let condition = NSCondition()
  private var inFlight = 0

  func enter(limit: Int, isCancelled: () -> Bool) throws {
    condition.lock()
    defer { condition.unlock() }
    while inFlight >= max(1, limit) {
      if isCancelled() { throw CancelledError() }
      _ = condition.wait(until: Date().addingTimeInterval(0.05))
    }
    inFlight += 1
  }

  func leave() {
    condition.lock()
    inFlight -= 1
    condition.broadcast()
    condition.unlock()
  }
}
