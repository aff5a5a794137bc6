import Tensor

/// Errors of the Diffusion target. Each names the operation and what is wrong, so a workflow node can
/// pass the message on unchanged.
public enum DiffusionError: Error, Equatable, CustomStringConvertible {
  /// A parameter is out of range (steps ≤ 0, partial steps > grid, tile larger than allowed, ...).
  case invalidArgument(op: String, detail: String)
  /// Tensors whose shapes do not fit together (noise vs latent, model output vs input, ...).
  case shapeMismatch(op: String, shapes: [[Int]], detail: String)
  /// A step callback asked the sampler to stop; `completedSteps` steps had run.
  case cancelled(op: String, completedSteps: Int)

  public var description: String {
    switch self {
    case .invalidArgument(let op, let detail):
      return "\(op): \(detail)"
    case .shapeMismatch(let op, let shapes, let detail):
      let s = shapes.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" }.joined(separator: " and ")
      return "\(op): shape mismatch between \(s): \(detail)"
    case .cancelled(let op, let completed):
      return "\(op): cancelled after \(completed) step(s)"
    }
  }
}

@inline(__always)
func check(_ condition: Bool, _ op: String, _ detail: @autoclosure () -> String) throws {
  if !condition { throw DiffusionError.invalidArgument(op: op, detail: detail()) }
}

@inline(__always)
func checkShapes(_ a: [Int], _ b: [Int], _ op: String, _ detail: @autoclosure () -> String) throws {
  if a != b { throw DiffusionError.shapeMismatch(op: op, shapes: [a, b], detail: detail()) }
}
