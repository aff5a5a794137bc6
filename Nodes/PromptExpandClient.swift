import Foundation
import Workflow

#if canImport(FoundationNetworking)
  import FoundationNetworking
#endif

/// What can go wrong in prompt expansion. Messages say what to do; none ever holds the API key (text from a
/// server is shortened and has the key blanked out before it is quoted).
public enum PromptExpandError: Error, CustomStringConvertible, Equatable {
  case template(path: String, message: String)
  case config(String)
  /// An answer that retrying will not fix (401/403/404/other 4xx, bad JSON, a refusal, …).
  case answer(String)
  /// Retries or the time bound ran out; `last` is the last attempt's problem.
  case gaveUp(attempts: Int, seconds: Double, last: String)

  /// A failure of the server or the network (what `on-failure: passthrough` covers), as opposed to a
  /// configuration the user must fix.
  public var isServerFailure: Bool {
    switch self {
    case .answer, .gaveUp: return true
    case .template, .config: return false
    }
  }

  public var description: String {
    switch self {
    case .template(let path, let message): return "prompt template \(path): \(message)"
    case .config(let message): return message
    case .answer(let message): return message
    case .gaveUp(let attempts, let seconds, let last):
      return String(format: "gave up after %d attempt(s) in %.1f s: ", attempts, seconds) + last
    }
  }
}

/// How to reach the server and how hard to try. None of it changes an expansion, so none of it is in the key.
struct ChatEndpoint: Sendable {
  /// The API root, e.g. `http://127.0.0.1:8080/v1`; the request goes to `{baseURL}/chat/completions`.
  var baseURL: URL
  /// Sent as `Authorization: Bearer …` when present. Never printed, stored or hashed.
  var apiKey: String?
  var connectTimeout: Double
  var readTimeout: Double
  var totalTimeout: Double
  var retries: Int
  var retryDelay: Double
  /// Check the connection with `ConnectProbe` first (false when a proxy is configured).
  var probeConnect = true

  var completionsURL: URL { baseURL.appendingPathComponent("chat/completions") }

  /// Checks a base URL: http or https, a host, no user/password, query or fragment (a key belongs in
  /// `$COGFLOW_LLM_KEY`, never in a URL that ends up in logs). The message does not echo a rejected URL.
  static func parseBaseURL(_ text: String) throws -> URL {
    var trimmed = text.trimmingCharacters(in: .whitespaces)
    while trimmed.hasSuffix("/") { trimmed.removeLast() }
    guard !trimmed.isEmpty else {
      throw PromptExpandError.config(
        "no server: set with: { base-url: … } or $COGFLOW_LLM_URL (e.g. http://127.0.0.1:8080/v1 for llama.cpp)")
    }
    guard let components = URLComponents(string: trimmed), let scheme = components.scheme?.lowercased(),
      scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty, let url = components.url
    else {
      throw PromptExpandError.config(
        "base-url must be an http:// or https:// URL with a host, like http://127.0.0.1:8080/v1")
    }
    if components.user != nil || components.password != nil || components.query != nil
      || components.fragment != nil
    {
      throw PromptExpandError.config(
        "base-url must not hold a user, password, query or fragment (the URL is not shown here): put the API key"
          + " in $COGFLOW_LLM_KEY or the variable named by api-key-env")
    }
    return url
  }
}

/// The request body fields, in the order they are written.
struct ChatRequest: Sendable {
  var model: String
  var messages: [(role: String, content: String)]
  var temperature: Double
  var topP: Double
  var maxTokens: Int
  /// Sent only when set (OpenAI, llama.cpp, vLLM and Ollama accept `seed`).
  var seed: Int?

  /// Compact JSON with a fixed field order; numbers in their shortest form (0.01, 0.7).
  var body: Data {
    var out = "{\"model\":\(Value.jsonString(model)),\"messages\":["
    out += messages.map { "{\"role\":\(Value.jsonString($0.role)),\"content\":\(Value.jsonString($0.content))}" }
      .joined(separator: ",")
    out += "],\"temperature\":\(Self.number(temperature)),\"top_p\":\(Self.number(topP))"
    out += ",\"max_tokens\":\(maxTokens),\"stream\":false"
    if let seed { out += ",\"seed\":\(seed)" }
    return Data((out + "}").utf8)
  }

  static func number(_ d: Double) -> String {
    d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : "\(d)"
  }
}

/// One HTTP exchange's result, before interpretation.
struct HTTPReply: Sendable {
  var status: Int
  var headers: [String: String]
  var body: Data

  func header(_ name: String) -> String? {
    headers.first { $0.key.lowercased() == name.lowercased() }?.value
  }
}

/// Talks to an OpenAI-compatible `/chat/completions` endpoint with URLSession (FoundationNetworking on Linux):
/// per-attempt connect and read timeouts, retries with exponential backoff and jitter on 429/5xx and transport
/// errors (honouring Retry-After), a bound on the total time, and cancellation within ~50 ms.
struct ChatClient: Sendable {
  var endpoint: ChatEndpoint
  /// Called for retry notices (the node's log). Never given the key.
  var log: @Sendable (String) -> Void = { _ in }
  var isCancelled: @Sendable () -> Bool = { false }

  /// The expansion text as the server sent it (uncleaned). Throws `PromptExpandError` or `CancelledError`.
  func complete(_ request: ChatRequest) throws -> String {
    let started = Date()
    let deadline = started.addingTimeInterval(endpoint.totalTimeout)
    var attempt = 0
    while true {
      attempt += 1
      let remaining = deadline.timeIntervalSinceNow
      var problem: String
      var retryAfter: Double?
      do {
        let reply = try send(request, budget: remaining)
        switch reply.status {
        case 200..<300:
          return try interpret(reply, request: request)
        case 429, 500..<600:
          problem = "HTTP \(reply.status) from \(where_)\(snippet(reply.body))"
          retryAfter = reply.header("Retry-After").flatMap(Self.parseRetryAfter)
        default:
          throw PromptExpandError.answer(final(reply, request: request))
        }
      } catch let failure as TransportFailure {
        problem = failure.message
      }
      let elapsed = Date().timeIntervalSince(started)
      guard attempt <= endpoint.retries else {
        throw PromptExpandError.gaveUp(attempts: attempt, seconds: elapsed, last: problem)
      }
      let backoff = endpoint.retryDelay * pow(2, Double(attempt - 1)) * Double.random(in: 0.5...1.0)
      let wait = retryAfter.map { max($0, 0) } ?? backoff
      let left = deadline.timeIntervalSinceNow
      guard wait < left else {
        let why = retryAfter != nil ? String(format: "; the server asked to wait %.1f s", wait) : ""
        throw PromptExpandError.gaveUp(
          attempts: attempt, seconds: elapsed,
          last: problem + why + String(format: " (total-timeout %.0f s)", endpoint.totalTimeout))
      }
      log(problem + String(format: "; retrying in %.2f s (attempt %d of %d)", wait, attempt + 1, endpoint.retries + 1))
      try sleep(wait)
    }
  }

  private var where_: String { endpoint.completionsURL.absoluteString }

  /// Sleeps, waking every 50 ms to check for cancellation.
  private func sleep(_ seconds: Double) throws {
    let end = Date().addingTimeInterval(seconds)
    while true {
      if isCancelled() { throw CancelledError() }
      let left = end.timeIntervalSinceNow
      if left <= 0 { return }
      Thread.sleep(forTimeInterval: min(left, 0.05))
    }
  }

  /// Answers are a few KB; a larger one is refused rather than held in memory.
  static let maxAnswerBytes: Int64 = 16 << 20

  struct TransportFailure: Error {
    var message: String
  }

  private final class Box: @unchecked Sendable {
    var data: Data?
    var response: URLResponse?
    var error: Error?
  }

  /// One POST. Throws `TransportFailure` for network trouble and timeouts, `CancelledError` when cancelled.
  private func send(_ chat: ChatRequest, budget: Double) throws -> HTTPReply {
    var request = URLRequest(url: endpoint.completionsURL)
    request.httpMethod = "POST"
    request.setValue("application/json", forHTTPHeaderField: "Content-Type")
    request.setValue("application/json", forHTTPHeaderField: "Accept")
    if let key = endpoint.apiKey { request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
    request.httpBody = chat.body
    // The watch loop below enforces the timeouts to the millisecond; URLSession's own timer (whole seconds on
    // Linux, truncated) is only a backstop.
    request.timeoutInterval = (max(endpoint.readTimeout, endpoint.connectTimeout)).rounded(.up) + 1
    let configuration = URLSessionConfiguration.ephemeral
    configuration.timeoutIntervalForRequest = request.timeoutInterval
    configuration.timeoutIntervalForResource = max(1, budget + 1)
    configuration.urlCache = nil
    let session = URLSession(configuration: configuration)
    defer { session.invalidateAndCancel() }

    let started = Date()
    if endpoint.probeConnect,
      let problem = try ConnectProbe.check(
        url: endpoint.completionsURL, timeout: min(endpoint.connectTimeout, max(budget, 0.001)),
        isCancelled: isCancelled)
    {
      throw TransportFailure(message: problem)
    }
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    let task = session.dataTask(with: request) { data, response, error in
      box.data = data
      box.response = response
      box.error = error
      done.signal()
    }
    task.resume()
    // Watch the task: cancellation, the read timeout and the total bound.
    while done.wait(timeout: .now() + 0.05) == .timedOut {
      let elapsed = Date().timeIntervalSince(started)
      var failure: String?
      if isCancelled() {
        task.cancel()
        _ = done.wait(timeout: .now() + 2)
        throw CancelledError()
      } else if max(task.countOfBytesReceived, task.countOfBytesExpectedToReceive) > Self.maxAnswerBytes {
        task.cancel()
        _ = done.wait(timeout: .now() + 2)
        throw PromptExpandError.answer(
          "\(where_) sent more than \(Self.maxAnswerBytes >> 20) MiB; a chat answer of 300 tokens is a few KB")
      } else if elapsed > budget {
        failure = "no answer from \(where_) within the total-timeout" + String(format: " (%.1f s left)", max(budget, 0))
      } else if elapsed > endpoint.readTimeout {
        failure =
          "no answer from \(where_) within read-timeout"
          + String(format: " %.1f s (a slow model may need a larger read-timeout)", endpoint.readTimeout)
      }
      if let failure {
        task.cancel()
        _ = done.wait(timeout: .now() + 2)
        throw TransportFailure(message: failure)
      }
    }
    if let error = box.error {
      let ns = error as NSError
      if ns.domain == NSURLErrorDomain && ns.code == NSURLErrorTimedOut {
        throw TransportFailure(
          message: "no answer from \(where_) within read-timeout" + String(format: " %.1f s", endpoint.readTimeout))
      }
      throw TransportFailure(message: "cannot reach \(where_): \(redact(ns.localizedDescription))")
    }
    guard let http = box.response as? HTTPURLResponse else {
      throw TransportFailure(message: "no HTTP response from \(where_)")
    }
    var headers: [String: String] = [:]
    for (name, value) in http.allHeaderFields {
      if let name = name as? String, let value = value as? String { headers[name] = value }
    }
    return HTTPReply(status: http.statusCode, headers: headers, body: box.data ?? Data())
  }

  /// The message for a status that retrying will not fix.
  private func final(_ reply: HTTPReply, request: ChatRequest) -> String {
    switch reply.status {
    case 401, 403:
      let keyState = endpoint.apiKey == nil ? "no API key was sent" : "the API key was refused"
      return "HTTP \(reply.status) from \(where_): \(keyState); set $COGFLOW_LLM_KEY (or OPENAI_API_KEY, or the"
        + " variable named by api-key-env) to a valid key\(snippet(reply.body))"
    case 404:
      return "HTTP 404 from \(where_): wrong base-url (it should end at the API root, e.g. …/v1) or unknown model"
        + " '\(request.model)'\(snippet(reply.body))"
    default:
      return "HTTP \(reply.status) from \(where_)\(snippet(reply.body))"
    }
  }

  /// The text of a 2xx answer, or an error saying what is wrong with it.
  private func interpret(_ reply: HTTPReply, request: ChatRequest) throws -> String {
    let contentType = reply.header("Content-Type") ?? "none"
    guard contentType.lowercased().contains("json") else {
      throw PromptExpandError.answer(
        "\(where_) answered with content type \(quote(contentType, limit: 80)), not JSON: is base-url the"
          + " API root (e.g. http://host:8080/v1)?\(snippet(reply.body))")
    }
    guard let object = try? JSONSerialization.jsonObject(with: reply.body), let root = object as? [String: Any]
    else {
      throw PromptExpandError.answer("\(where_) sent malformed JSON\(snippet(reply.body))")
    }
    if let error = root["error"], !(error is NSNull) {
      throw PromptExpandError.answer("\(where_) reported an error: \(quote(String(describing: error)))")
    }
    guard let choices = root["choices"] as? [Any], let first = choices.first as? [String: Any] else {
      throw PromptExpandError.answer("\(where_) answered with no choices (an empty or unexpected completion)")
    }
    let message = first["message"] as? [String: Any]
    let finish = first["finish_reason"] as? String
    if let refusal = message?["refusal"] as? String, !refusal.isEmpty {
      throw PromptExpandError.answer("the model refused: \(quote(refusal))")
    }
    if finish == "content_filter" {
      throw PromptExpandError.answer("the server's content filter stopped the answer (finish_reason content_filter)")
    }
    guard let content = message?["content"] as? String else {
      throw PromptExpandError.answer("\(where_) answered without message content")
    }
    if finish == "length" {
      throw PromptExpandError.answer(
        "the expansion was cut at max-tokens \(request.maxTokens) (finish_reason length): raise max-tokens or use a"
          + " model that follows the 100–200 word instruction")
    }
    return content
  }

  /// `: <first 200 characters of the body>` with the key blanked and control characters escaped; "" if empty.
  private func snippet(_ body: Data) -> String {
    let text = String(decoding: body.prefix(65536), as: UTF8.self)
    guard !text.isEmpty else { return "" }
    var out = ""
    for scalar in quote(text).unicodeScalars {
      out += scalar.value < 0x20 || scalar.value == 0x7F ? "\\u{\(String(scalar.value, radix: 16))}" : String(scalar)
    }
    return ": " + out
  }

  /// Server text fit to quote: the key blanked first, then cut to `limit` characters.
  func quote(_ text: String, limit: Int = 200) -> String {
    String(redact(text).prefix(limit))
  }

  /// Blanks every occurrence of the API key (a server may echo it in an error).
  func redact<S: StringProtocol>(_ text: S) -> String {
    let string = String(text)
    guard let key = endpoint.apiKey, !key.isEmpty else { return string }
    return string.replacingOccurrences(of: key, with: "[api key]")
  }

  /// Retry-After as seconds or an HTTP date; nil when unreadable.
  static func parseRetryAfter(_ value: String) -> Double? {
    let text = value.trimmingCharacters(in: .whitespaces)
    if let seconds = Double(text), seconds.isFinite, seconds >= 0 { return seconds }
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "GMT")
    formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
    guard let date = formatter.date(from: text) else { return nil }
    return max(0, date.timeIntervalSinceNow)
  }
}
