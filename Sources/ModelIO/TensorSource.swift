import Foundation
import Tensor

/// Errors of the ModelIO target; each names the file and, where there is one, the tensor.
public enum ModelIOError: Error, CustomStringConvertible, Equatable {
  /// The file cannot be opened or mapped.
  case unreadable(path: String, reason: String)
  /// The file's structure is wrong (header, offsets, archive entries, pickle).
  case malformed(path: String, tensor: String?, reason: String)
  /// A tensor the model needs is not in the file.
  case missingTensor(path: String, key: String)

  public var description: String {
    switch self {
    case .unreadable(let path, let reason): return "\(path): cannot read: \(reason)"
    case .malformed(let path, let tensor, let reason):
      return "\(path)\(tensor.map { ": tensor '\($0)'" } ?? ""): \(reason)"
    case .missingTensor(let path, let key): return "\(path): no tensor named '\(key)'"
    }
  }
}

/// A set of named stored tensors: a safetensors file, a SAT checkpoint, an HF folder, or memory.
/// Models read their weights through this, so they do not care which file format held them.
public protocol TensorSource: Sendable {
  /// Where the tensors come from, for error messages (a file or folder path).
  var location: String { get }
  /// Every tensor name, sorted.
  var keys: [String] { get }
  /// The tensor as stored (not widened); throws `ModelIOError.missingTensor` when absent.
  func stored(_ key: String) throws -> StoredTensor
}

extension TensorSource {
  /// The tensor widened to float32.
  public func tensor(_ key: String) throws -> Tensor { try stored(key).toFloat32() }

  /// Whether a tensor of that name exists.
  public func contains(_ key: String) -> Bool { keys.contains(key) }
}

/// Tensors held in memory, for tests and for tensors computed at run time.
public struct MemoryTensorSource: TensorSource {
  public let location: String
  private let tensors: [String: StoredTensor]

  public init(_ tensors: [String: StoredTensor], location: String = "<memory>") {
    self.tensors = tensors
    self.location = location
  }

  public var keys: [String] { tensors.keys.sorted() }

  public func stored(_ key: String) throws -> StoredTensor {
    guard let t = tensors[key] else { throw ModelIOError.missingTensor(path: location, key: key) }
    return t
  }
}

/// A view of another source with a key prefix removed (SAT's `model.diffusion_model.`), or added.
public struct PrefixedTensorSource: TensorSource {
  public let base: any TensorSource
  public let prefix: String

  public init(_ base: any TensorSource, stripping prefix: String) {
    self.base = base
    self.prefix = prefix
  }

  public var location: String { base.location }
  public var keys: [String] {
    base.keys.filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
  }
  public func stored(_ key: String) throws -> StoredTensor { try base.stored(prefix + key) }
}
