import Foundation

/// A parameter value from YAML or `--set`: what a node's `with:` and a workflow's `params:` hold.
public enum Value: Hashable, Sendable, CustomStringConvertible {
  case null
  case bool(Bool)
  case int(Int)
  case float(Double)
  case string(String)
  case list([Value])

  /// Canonical JSON: the form that goes into keys. Floats use the shortest round-trip text and always
  /// carry a '.' or exponent, so 7 and 7.0 hash differently only when declared with different types.
  public var canonicalJSON: String {
    switch self {
    case .null: return "null"
    case .bool(let b): return b ? "true" : "false"
    case .int(let i): return String(i)
    case .float(let d):
      if d.isNaN { return "\"NaN\"" }
      if d.isInfinite { return d > 0 ? "\"Infinity\"" : "\"-Infinity\"" }
      let text = "\(d)"
      return text.contains(".") || text.contains("e") ? text : text + ".0"
    case .string(let s): return Value.jsonString(s)
    case .list(let items): return "[" + items.map(\.canonicalJSON).joined(separator: ",") + "]"
    }
  }

  /// Plain text: what `${name}` interpolation and text ports see.
  public var text: String {
    switch self {
    case .null: return ""
    case .string(let s): return s
    case .list(let items): return items.map(\.text).joined(separator: ",")
    default: return canonicalJSON
    }
  }

  public var description: String {
    if case .string(let s) = self { return Value.jsonString(s) }
    return canonicalJSON
  }

  public var typeName: String {
    switch self {
    case .null: return "null"
    case .bool: return "bool"
    case .int: return "int"
    case .float: return "float"
    case .string: return "string"
    case .list: return "list"
    }
  }

  public var doubleValue: Double? {
    switch self {
    case .int(let i): return Double(i)
    case .float(let d): return d
    default: return nil
    }
  }

  /// Reads a YAML scalar with YAML 1.2 core-schema rules: quoted text stays a string.
  public static func fromScalar(_ text: String, quoted: Bool) -> Value {
    if quoted { return .string(text) }
    switch text {
    case "", "~", "null", "Null", "NULL": return .null
    case "true", "True", "TRUE": return .bool(true)
    case "false", "False", "FALSE": return .bool(false)
    default: break
    }
    // YAML 1.2 core schema: decimal, 0o octal and 0x hex ints; decimal floats; .inf / .nan.
    if Self.isDecimalInt(text) {
      if let i = Int(text) { return .int(i) }
      if let d = Double(text) { return .float(d) }  // beyond Int: keep the magnitude
    }
    if text.hasPrefix("0o"), text.dropFirst(2).first?.isHexDigit == true, let i = Int(text.dropFirst(2), radix: 8) {
      return .int(i)
    }
    if text.hasPrefix("0x"), text.dropFirst(2).first?.isHexDigit == true, let i = Int(text.dropFirst(2), radix: 16) {
      return .int(i)
    }
    if Self.isDecimalFloat(text), let d = Double(text) { return .float(d) }
    switch text {
    case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .float(.infinity)
    case "-.inf", "-.Inf", "-.INF": return .float(-.infinity)
    case ".nan", ".NaN", ".NAN": return .float(.nan)
    default: break
    }
    return .string(text)
  }

  /// `[-+]?[0-9]+`
  static func isDecimalInt(_ text: String) -> Bool {
    var digits = Substring(text)
    if digits.first == "-" || digits.first == "+" { digits = digits.dropFirst() }
    return !digits.isEmpty && digits.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
  }

  /// `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?` (YAML 1.2 core float, without inf/nan).
  static func isDecimalFloat(_ text: String) -> Bool {
    var rest = Substring(text).utf8[...]
    func digits() -> Int {
      var n = 0
      while let c = rest.first, c >= 0x30 && c <= 0x39 {
        rest = rest.dropFirst()
        n += 1
      }
      return n
    }
    if rest.first == UInt8(ascii: "-") || rest.first == UInt8(ascii: "+") { rest = rest.dropFirst() }
    let whole = digits()
    var fraction = 0
    if rest.first == UInt8(ascii: ".") {
      rest = rest.dropFirst()
      fraction = digits()
    }
    guard whole > 0 || fraction > 0 else { return false }
    if rest.first == UInt8(ascii: "e") || rest.first == UInt8(ascii: "E") {
      rest = rest.dropFirst()
      if rest.first == UInt8(ascii: "-") || rest.first == UInt8(ascii: "+") { rest = rest.dropFirst() }
      guard digits() > 0 else { return false }
    }
    return rest.isEmpty
  }

  /// Converts a YAML node (scalar or list of scalars) into a value; mappings are not values.
  public static func from(_ node: YAMLNode) -> Value? {
    switch node.kind {
    case .scalar(let text, let quoted): return fromScalar(text, quoted: quoted)
    case .sequence(let items):
      var values: [Value] = []
      for item in items {
        guard let value = from(item) else { return nil }
        values.append(value)
      }
      return .list(values)
    case .mapping: return nil
    }
  }

  public static func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if scalar.value < 0x20 {
          out += String(format: "\\u%04x", scalar.value)
        } else {
          out.unicodeScalars.append(scalar)
        }
      }
    }
    return out + "\""
  }
}
