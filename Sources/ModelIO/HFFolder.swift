import Foundation
import Tensor

/// A Hugging Face model folder: `config.json` plus either `model.safetensors` or the shards that
/// `model.safetensors.index.json` lists in its `weight_map`. Every shard is opened (header only) and
/// every tensor the index lists must be in the shard it names.
public final class HFFolder: TensorSource, @unchecked Sendable {
  public static let singleFile = "model.safetensors"
  public static let indexFile = "model.safetensors.index.json"

  public let folder: String
  /// config.json as written.
  public let configJSON: Data
  /// `model_type` and `architectures` from config.json, when present.
  public let modelType: String?
  public let architectures: [String]
  /// The safetensors files, in name order.
  public let files: [SafetensorsFile]
  public let keys: [String]
  private let owner: [String: SafetensorsFile]

  public init(folder: String) throws {
    self.folder = folder
    let dir = folder as NSString
    let configPath = dir.appendingPathComponent("config.json")
    guard let config = FileManager.default.contents(atPath: configPath) else {
      throw ModelIOError.unreadable(path: configPath, reason: "a Hugging Face model folder needs config.json")
    }
    guard let object = try? JSONSerialization.jsonObject(with: config) as? [String: Any] else {
      throw ModelIOError.malformed(path: configPath, tensor: nil, reason: "not a JSON object")
    }
    configJSON = config
    modelType = object["model_type"] as? String
    architectures = object["architectures"] as? [String] ?? []

    let indexPath = dir.appendingPathComponent(Self.indexFile)
    let singlePath = dir.appendingPathComponent(Self.singleFile)
    var owner: [String: SafetensorsFile] = [:]
    var files: [SafetensorsFile] = []
    if let indexData = FileManager.default.contents(atPath: indexPath) {
      guard let index = try? JSONSerialization.jsonObject(with: indexData) as? [String: Any],
        let map = index["weight_map"] as? [String: Any]
      else { throw ModelIOError.malformed(path: indexPath, tensor: nil, reason: "no weight_map object") }
      var shards: [String: SafetensorsFile] = [:]
      for (tensor, value) in map {
        guard let shard = value as? String else {
          throw ModelIOError.malformed(path: indexPath, tensor: tensor, reason: "shard name is not a string")
        }
        // Shard names are plain file names inside this folder, never paths that leave it.
        guard !shard.isEmpty, !shard.contains("/"), shard != ".", shard != ".." else {
          throw ModelIOError.malformed(
            path: indexPath, tensor: tensor, reason: "shard name '\(shard)' is not a file name")
        }
        if shards[shard] == nil {
          let p = dir.appendingPathComponent(shard)
          guard FileManager.default.fileExists(atPath: p) else {
            throw ModelIOError.unreadable(path: p, reason: "shard listed by \(Self.indexFile) is missing")
          }
          shards[shard] = try SafetensorsFile(path: p)
        }
        owner[tensor] = shards[shard]
      }
      for (tensor, file) in owner where (try? file.info(tensor)) == nil {
        throw ModelIOError.malformed(
          path: file.location, tensor: tensor, reason: "listed by \(Self.indexFile) but not in this shard")
      }
      files = shards.keys.sorted().compactMap { shards[$0] }
    } else if FileManager.default.fileExists(atPath: singlePath) {
      let f = try SafetensorsFile(path: singlePath)
      files = [f]
      for k in f.keys { owner[k] = f }
    } else {
      let hasBin =
        FileManager.default.fileExists(atPath: dir.appendingPathComponent("pytorch_model.bin"))
        || FileManager.default.fileExists(atPath: dir.appendingPathComponent("pytorch_model.bin.index.json"))
      throw ModelIOError.unreadable(
        path: folder,
        reason: "no \(Self.singleFile) or \(Self.indexFile)"
          + (hasBin ? " (pytorch_model.bin is not read: CogView3's T5 must be safetensors)" : ""))
    }
    self.files = files
    self.owner = owner
    keys = owner.keys.sorted()
  }

  /// config.json parsed (a fresh object each call).
  public func config() -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: configJSON) as? [String: Any]) ?? [:]
  }

  public var location: String { folder }

  public func stored(_ key: String) throws -> StoredTensor {
    guard let f = owner[key] else { throw ModelIOError.missingTensor(path: folder, key: key) }
    return try f.stored(key)
  }

  public func info(_ key: String) throws -> TensorInfo {
    guard let f = owner[key] else { throw ModelIOError.missingTensor(path: folder, key: key) }
    return try f.info(key)
  }
}
