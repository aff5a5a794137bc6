import Foundation

/// One problem in a workflow, with where it was written. Validation collects all of them before anything runs.
public struct Diagnostic: Error, Hashable, Sendable, CustomStringConvertible {
  public var location: SourceLocation?
  public var message: String

  public init(_ message: String, at location: SourceLocation?) {
    self.location = location
    self.message = message
  }

  public var description: String {
    if let location { return "\(location): error: \(message)" }
    return "error: \(message)"
  }
}

/// Errors of the Workflow target.
public enum WorkflowError: Error, CustomStringConvertible, Sendable {
  /// The workflow did not validate; every problem is listed.
  case invalid([Diagnostic])
  case io(path: String, message: String)
  /// A node's run function threw, or returned outputs that don't match its declaration.
  case nodeFailed(node: String, type: String, message: String)
  case cancelled
  case cache(path: String, message: String)
  case usage(String)

  public var description: String {
    switch self {
    case .invalid(let diagnostics):
      return diagnostics.map(\.description).joined(separator: "\n")
    case .io(let path, let message):
      return "\(path): \(message)"
    case .nodeFailed(let node, let type, let message):
      return "node '\(node)' (\(type)) failed: \(message)"
    case .cancelled:
      return "cancelled"
    case .cache(let path, let message):
      return "cache \(path): \(message)"
    case .usage(let message):
      return message
    }
  }
}

/// Thrown by `NodeContext.progress` / `checkCancelled` when the run is being cancelled.
public struct CancelledError: Error, CustomStringConvertible, Sendable {
  public init() {}
  public var description: String { "cancelled" }
}
