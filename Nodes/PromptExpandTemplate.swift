import Foundation
import Workflow

/// A chat template for prompt expansion: a system instruction, few-shot user/assistant pairs, and the final
/// user turn with `{prompt}` where the user's text goes. The official one is CogView3's
/// (`PromptTemplate.official`, generated from THUDM/CogView3 `prompt_optimize.py`); a workflow may name another
/// as a JSON file with the fields `system`, `examples` ([{user, assistant}]) and `user_template`.
public struct PromptTemplate: Sendable, Hashable {
  public struct Example: Sendable, Hashable {
    public var user: String
    public var assistant: String
    public init(user: String, assistant: String) {
      self.user = user
      self.assistant = assistant
    }
  }

  public static let placeholder = "{prompt}"

  public var system: String
  public var examples: [Example]
  /// The final user turn; holds `{prompt}` exactly once.
  public var userTemplate: String

  public init(system: String, examples: [Example], userTemplate: String) {
    self.system = system
    self.examples = examples
    self.userTemplate = userTemplate
  }

  /// The chat messages for `prompt`, as (role, content) in order. The prompt is trimmed first, as the official
  /// script does (`text = prompt.strip()`); it is inserted once, verbatim (a `{prompt}` inside it stays text).
  public func messages(for prompt: String) -> [(role: String, content: String)] {
    var out: [(role: String, content: String)] = [("system", system)]
    for example in examples {
      out.append(("user", example.user))
      out.append(("assistant", example.assistant))
    }
    let parts = userTemplate.components(separatedBy: Self.placeholder)
    let text = PromptExpandText.pythonStrip(prompt)
    out.append(("user", parts.count == 2 ? parts[0] + text + parts[1] : userTemplate))
    return out
  }

  /// Reads a template file (the JSON form of `Nodes/Resources/cogview3-prompt-template.json`). Errors name the
  /// file and the field.
  public static func load(path: String) throws -> PromptTemplate {
    let data: Data
    do {
      data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
      throw PromptExpandError.template(path: path, message: "cannot read it (\(error.localizedDescription))")
    }
    guard data.count <= 1 << 20 else {
      throw PromptExpandError.template(path: path, message: "larger than 1 MiB; a template is a few KB")
    }
    let object: Any
    do {
      object = try JSONSerialization.jsonObject(with: data)
    } catch {
      throw PromptExpandError.template(path: path, message: "not valid JSON")
    }
    guard let root = object as? [String: Any] else {
      throw PromptExpandError.template(path: path, message: "expected a JSON object at the top")
    }
    func string(_ value: Any?, _ field: String) throws -> String {
      guard let text = value as? String else {
        throw PromptExpandError.template(path: path, message: "field '\(field)' is missing or not a string")
      }
      return text
    }
    let system = try string(root["system"], "system")
    let userTemplate = try string(root["user_template"], "user_template")
    let count = userTemplate.components(separatedBy: placeholder).count - 1
    guard count == 1 else {
      throw PromptExpandError.template(
        path: path, message: "field 'user_template' must hold \(placeholder) exactly once (found \(count))")
    }
    var examples: [Example] = []
    if let list = root["examples"] {
      guard let items = list as? [[String: Any]] else {
        throw PromptExpandError.template(path: path, message: "field 'examples' must be a list of objects")
      }
      for (i, item) in items.enumerated() {
        examples.append(
          Example(
            user: try string(item["user"], "examples[\(i)].user"),
            assistant: try string(item["assistant"], "examples[\(i)].assistant")))
      }
    }
    return PromptTemplate(system: system, examples: examples, userTemplate: userTemplate)
  }
}

/// Text handling that follows the official script's Python exactly.
enum PromptExpandText {
  /// Python's `str.isspace` for one scalar: Unicode White_Space plus the separators U+001C…U+001F.
  static func isPythonSpace(_ scalar: Unicode.Scalar) -> Bool {
    scalar.properties.isWhitespace || (0x1C...0x1F).contains(scalar.value)
  }

  /// `s.strip()`.
  static func pythonStrip(_ text: String) -> String {
    let scalars = Array(text.unicodeScalars)
    guard let first = scalars.firstIndex(where: { !isPythonSpace($0) }),
      let last = scalars.lastIndex(where: { !isPythonSpace($0) })
    else { return "" }
    var out = String.UnicodeScalarView()
    out.append(contentsOf: scalars[first...last])
    return String(out)
  }

  /// The official `clean_string`: newlines to spaces, strip, then every run of two or more whitespace
  /// characters to one space (a single tab stays a tab, as `re.sub(r"\s{2,}", " ", s)` leaves it).
  static func clean(_ text: String) -> String {
    var replaced = String.UnicodeScalarView()
    for scalar in text.unicodeScalars { replaced.append(scalar == "\n" ? " " : scalar) }
    let stripped = Array(pythonStrip(String(replaced)).unicodeScalars)
    var out = String.UnicodeScalarView()
    var i = 0
    while i < stripped.count {
      if isPythonSpace(stripped[i]) {
        var j = i
        while j < stripped.count && isPythonSpace(stripped[j]) { j += 1 }
        if j - i >= 2 { out.append(" ") } else { out.append(stripped[i]) }
        i = j
      } else {
        out.append(stripped[i])
        i += 1
      }
    }
    return String(out)
  }
}
