/// Errors of the Tensor target. Each names the operation and the shapes involved so that the
/// message alone says what went wrong; no kernel reachable from user input traps instead.
public enum TensorError: Error, Equatable, CustomStringConvertible {
  /// Operand shapes do not fit the operation.
  case shapeMismatch(op: String, shapes: [[Int]], detail: String)
  /// A storage dtype cannot be used where it was given.
  case dtypeMismatch(op: String, expected: String, found: String)
  /// A parameter is out of range (groups not dividing channels, stride 0, ...).
  case invalidArgument(op: String, detail: String)

  public var description: String {
    switch self {
    case .shapeMismatch(let op, let shapes, let detail):
      let s = shapes.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" }
        .joined(separator: " and ")
      return "\(op): shape mismatch between \(s): \(detail)"
    case .dtypeMismatch(let op, let expected, let found):
      return "\(op): expected dtype \(expected), found \(found)"
    case .invalidArgument(let op, let detail):
      return "\(op): \(detail)"
    }
  }
}

@inline(__always)
func require(_ condition: Bool, _ op: String, _ shapes: [[Int]], _ detail: @autoclosure () -> String)
  throws
{
  if !condition { throw TensorError.shapeMismatch(op: op, shapes: shapes, detail: detail()) }
}
