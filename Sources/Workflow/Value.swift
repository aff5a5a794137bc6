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
    if let i = Int(text) { return .int(i) }
    if text.first.map({ $0.isNumber || $0 == "-" || $0 == "+" || $0 == "." }) == true, let d = Double(text) {
      return .float(d)
    }
    if text == ".inf" || text == "+.inf" { return .float(.infinity) }
    if text == "-.inf" { return .float(-.infinity) }
    if text == ".nan" { return .float(.nan) }
    return .string(text)
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
