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
  /// A pickle names a global outside the allow-list; nothing was called or imported.
  case refusedGlobal(path: String, name: String)
  /// The file is well formed but uses a feature CogFlow does not read (a dtype, a compression method).
  case unsupported(path: String, tensor: String?, reason: String)
  /// Writing a file failed.
  case unwritable(path: String, reason: String)

  public var description: String {
    switch self {
    case .unreadable(let path, let reason): return "\(path): cannot read: \(reason)"
    case .malformed(let path, let tensor, let reason):
      return "\(path)\(tensor.map { ": tensor '\($0)'" } ?? ""): \(reason)"
    case .missingTensor(let path, let key): return "\(path): no tensor named '\(key)'"
    case .refusedGlobal(let path, let name):
      return "\(path): pickle references '\(name)', which is not on the allow-list of state-dict globals "
        + "(refused; nothing was run)"
    case .unsupported(let path, let tensor, let reason):
      return "\(path)\(tensor.map { ": tensor '\($0)'" } ?? ""): unsupported: \(reason)"
    case .unwritable(let path, let reason): return "\(path): cannot write: \(reason)"
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
  /// Dtype and shape without touching (or materializing) the tensor's bytes.
  func info(_ key: String) throws -> TensorInfo
}

/// What a source says about one tensor before its bytes are read.
public struct TensorInfo: Sendable, Hashable, Codable {
  public var dtype: DType
  public var shape: [Int]

  public init(dtype: DType, shape: [Int]) {
    self.dtype = dtype
    self.shape = shape
  }

  public var elementCount: Int { shape.reduce(1, *) }
  public var byteCount: Int { elementCount * dtype.byteSize }
}

extension TensorSource {
  /// The tensor widened to float32.
  public func tensor(_ key: String) throws -> Tensor { try stored(key).toFloat32() }

  /// Whether a tensor of that name exists.
  public func contains(_ key: String) -> Bool { keys.contains(key) }

  /// Default: asks for the stored tensor, which for memory-mapped formats touches no data.
  public func info(_ key: String) throws -> TensorInfo {
    let t = try stored(key)
    return TensorInfo(dtype: t.dtype, shape: t.shape)
  }
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
  public func info(_ key: String) throws -> TensorInfo { try base.info(prefix + key) }
}
