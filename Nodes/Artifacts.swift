import Foundation
import ModelIO
import Tensor
import Workflow

/// The artifact codecs: how node outputs become bytes for the cache and back.
///
/// | tag | bytes |
/// |---|---|
/// | `text` | UTF-8 |
/// | `cond` | safetensors, one tensor `context` `[1, 225, D]` float32: the conditional T5 context only; the unconditional (all zeros, official §2.1) is derived where it is needed |
/// | `latent` | safetensors, one tensor `latent` `[1, C, h, w]` float32 (the diffusion model's scaled latent) |
/// | `image` | safetensors, one tensor `image` `[1, 3, H, W]` float32 in [0, 1] |
/// | `tiles` | canonical JSON `{"overlap":O,"tile":T}` in image pixels |
///
/// Tensor artifacts carry the metadata `{"cogflow": tag}` and nothing else, so equal tensors give equal bytes.
public enum Artifacts {
  public static let text = "text"
  public static let cond = "cond"
  public static let latent = "latent"
  public static let image = "image"
  public static let tiles = "tiles"

  // MARK: tensors

  static func encodeTensor(_ tensor: Tensor, tag: String) throws -> Artifact {
    let bytes = try SafetensorsWriter.encode(
      [tag == cond ? "context" : tag: StoredTensor(tensor)], metadata: ["cogflow": tag])
    return Artifact(type: tag, bytes: bytes)
  }

  static func decodeTensor(_ artifact: Artifact, tag: String, rank: Int) throws -> Tensor {
    guard artifact.type == tag else {
      throw NodeError.badInput(field: nil, "expected a \(tag) artifact, found \(artifact.type)")
    }
    let name = tag == cond ? "context" : tag
    let file = try SafetensorsFile(data: artifact.bytes, name: "<\(tag) artifact>")
    guard file.keys == [name] else {
      throw NodeError.badInput(field: nil, "a \(tag) artifact holds one tensor '\(name)', found \(file.keys)")
    }
    let tensor = try file.tensor(name)
    guard tensor.rank == rank, tensor.shape.first == 1 else {
      throw NodeError.badInput(field: nil, "a \(tag) tensor must be rank \(rank) with batch 1, found \(tensor.shape)")
    }
    return tensor
  }

  /// The conditional T5 context `[1, T, D]`.
  public static func encodeCond(_ context: Tensor) throws -> Artifact { try encodeTensor(context, tag: cond) }
  public static func decodeCond(_ artifact: Artifact) throws -> Tensor {
    try decodeTensor(artifact, tag: cond, rank: 3)
  }

  /// A scaled diffusion latent `[1, C, h, w]`.
  public static func encodeLatent(_ latent: Tensor) throws -> Artifact { try encodeTensor(latent, tag: Self.latent) }
  public static func decodeLatent(_ artifact: Artifact) throws -> Tensor {
    try decodeTensor(artifact, tag: latent, rank: 4)
  }

  /// An RGB image `[1, 3, H, W]` in [0, 1].
  public static func encodeImage(_ image: Tensor) throws -> Artifact {
    guard image.rank == 4, image.shape[0] == 1, image.shape[1] == 3 else {
      throw NodeError.badInput(field: nil, "an image must be [1, 3, H, W], found \(image.shape)")
    }
    return try encodeTensor(image, tag: Self.image)
  }
  public static func decodeImage(_ artifact: Artifact) throws -> Tensor {
    let t = try decodeTensor(artifact, tag: image, rank: 4)
    guard t.shape[1] == 3 else {
      throw NodeError.badInput(field: nil, "an image must have 3 channels, found \(t.shape)")
    }
    return t
  }

  // MARK: tile plans

  public static func encodeTiles(_ plan: TilePlan) -> Artifact {
    Artifact(text: "{\"overlap\":\(plan.overlap),\"tile\":\(plan.tile)}", type: tiles)
  }

  public static func decodeTiles(_ artifact: Artifact) throws -> TilePlan {
    guard artifact.type == tiles,
      let object = try? JSONSerialization.jsonObject(with: artifact.bytes) as? [String: Any],
      let tile = object["tile"] as? Int, let overlap = object["overlap"] as? Int
    else { throw NodeError.badInput(field: nil, "not a tile plan: \(artifact.text.prefix(80))") }
    return try TilePlan(tile: tile, overlap: overlap)
  }
}

/// A tile plan in image pixels: tiles of `tile × tile` overlapping by `overlap` (the sampler's
/// Mixture-of-Diffusers tiles; the VAE uses `tile` as its core size with exact GroupNorm statistics and halos).
/// Both are multiples of 8 so they fall on latent pixels.
public struct TilePlan: Sendable, Hashable {
  public let tile: Int
  public let overlap: Int

  public init(tile: Int, overlap: Int) throws {
    guard tile >= 64, tile % 8 == 0, overlap >= 0, overlap % 8 == 0, overlap < tile else {
      throw NodeError.badInput(
        field: "tile",
        "a tile plan needs tile ≥ 64 and overlap < tile, both multiples of 8; got tile \(tile), overlap \(overlap)")
    }
    self.tile = tile
    self.overlap = overlap
  }

  /// Tile and overlap in latent pixels (÷ 8).
  public var latentTile: Int { tile / 8 }
  public var latentOverlap: Int { overlap / 8 }
}

/// Errors of the node library. A node's errors reach the user as "node 'id' (type) failed: …" from the engine,
/// so these name the field (input port or parameter) and what to do.
public enum NodeError: Error, CustomStringConvertible, Sendable {
  /// An input artifact or parameter value that the node cannot use.
  case badInput(field: String?, String)
  /// A model file that is missing, of the wrong kind or unreadable.
  case model(field: String, path: String, String)

  public var description: String {
    switch self {
    case .badInput(let field, let message): return field.map { "\($0): \(message)" } ?? message
    case .model(let field, let path, let message): return "\(field) (\(path)): \(message)"
    }
  }

  /// The same error, naming `field` when it did not name one yet.
  func naming(_ field: String) -> NodeError {
    if case .badInput(nil, let message) = self { return .badInput(field: field, message) }
    return self
  }
}

/// Decodes input `port` with `decode`, naming the port in any error.
func input<T>(_ inputs: NodeInputs, _ port: String, _ decode: (Artifact) throws -> T) throws -> T {
  let artifact = try inputs.required(port)
  do { return try decode(artifact) } catch let error as NodeError { throw error.naming("input '\(port)'") } catch {
    throw NodeError.badInput(field: "input '\(port)'", "\(error)")
  }
}

/// As `input`, nil when the optional port is not connected.
func optionalInput<T>(_ inputs: NodeInputs, _ port: String, _ decode: (Artifact) throws -> T) throws -> T? {
  guard inputs[port] != nil else { return nil }
  return try input(inputs, port, decode)
}
