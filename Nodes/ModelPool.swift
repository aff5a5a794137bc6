import Foundation
import Models
import Workflow

/// The models of one run: each loaded at most once, shared by every node that uses it, and released after its
/// last user finishes (T5 is gone before the first UNet step).
///
/// `prepare(_:)` counts, per model path, the node instances of the resolved workflow whose parameters name it;
/// `observe(_:)` (fed the engine's events) counts one user off when a node is done, failed, skipped or cached,
/// and drops the model when none is left. Without `prepare` nothing is released until the pool goes away.
public final class ModelPool: @unchecked Sendable {
  private let lock = NSLock()
  private var users: [String: Int] = [:]
  private var nodeModels: [String: [String]] = [:]
  private var loaded: [String: AnyObject] = [:]
  private var loadCounts: [String: Int] = [:]

  public init() {}

  /// Counts the users of every model in `workflow` (call before the run).
  public func prepare(_ workflow: ResolvedWorkflow) {
    lock.lock()
    defer { lock.unlock() }
    users = [:]
    nodeModels = [:]
    for node in workflow.nodes {
      let paths = Set(node.params.models.values.map(\.path)).sorted()
      nodeModels[node.id] = paths
      for path in paths { users[path, default: 0] += 1 }
    }
  }

  /// Feeds one engine event: finished nodes release their models.
  public func observe(_ event: EngineEvent) {
    switch event.kind {
    case .nodeDone, .nodeFailed, .nodeSkipped, .nodeCached: break
    default: return
    }
    guard let node = event.node else { return }
    lock.lock()
    defer { lock.unlock() }
    guard let paths = nodeModels.removeValue(forKey: node) else { return }
    for path in paths {
      let left = (users[path] ?? 1) - 1
      users[path] = left
      if left <= 0 { loaded[path] = nil }
    }
  }

  /// Drops every loaded model (after a run).
  public func releaseAll() {
    lock.lock()
    loaded = [:]
    lock.unlock()
  }

  /// Whether the model at `path` is held now.
  public func isLoaded(_ path: String) -> Bool {
    lock.lock()
    defer { lock.unlock() }
    return loaded[path] != nil
  }

  /// How many times the model at `path` was loaded by this pool.
  public func loadCount(_ path: String) -> Int {
    lock.lock()
    defer { lock.unlock() }
    return loadCounts[path] ?? 0
  }

  /// The model at `path`, loading it with `load` the first time. Loads are serialized (one model at a time).
  func model<T: AnyObject>(_ path: String, load: () throws -> T) throws -> T {
    lock.lock()
    defer { lock.unlock() }
    if let existing = loaded[path] {
      guard let model = existing as? T else {
        throw NodeError.model(field: "model", path: path, "used as two different kinds of model in one run")
      }
      return model
    }
    let model = try load()
    loadCounts[path, default: 0] += 1
    // Keep it only while users remain (an unprepared pool keeps everything).
    if users[path].map({ $0 > 0 }) ?? true { loaded[path] = model }
    return model
  }

  // Typed accessors for the node types.

  func unet(_ path: String, field: String = "model") throws -> Box<UNet> {
    try model(path) { Box(try ModelConfig.loadUNet(path, field: field)) }
  }

  func vae(_ path: String, field: String = "model") throws -> Box<Autoencoder> {
    try model(path) { Box(try ModelConfig.loadVAE(path, field: field)) }
  }

  func textEncoder(_ path: String, field: String = "model") throws -> TextEncoder {
    try model(path) { try ModelConfig.loadT5(path, field: field) }
  }
}

/// A reference holder for value-type models in the pool.
final class Box<T>: @unchecked Sendable {
  let value: T
  init(_ value: T) { self.value = value }
}
