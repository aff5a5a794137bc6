import Foundation
import Tensor

/// What the denoising network is conditioned on, per batch item. Diffusion never looks inside: it only
/// batches the tensors (for CFG) and hands them to the model closure.
public struct Conditioning: Sendable, Equatable {
  /// Cross-attention context `[B, T, D]` (T5 hidden states: `[B, 225, 4096]`); the unconditional branch is
  /// all zeros (official §2.1).
  public var context: Tensor?
  /// The vector ("adm") conditioning `[B, 1536]` (`SizeConditioning.vector`); shared by both CFG branches.
  public var vector: Tensor?

  public init(context: Tensor? = nil, vector: Tensor? = nil) {
    self.context = context
    self.vector = vector
  }

  /// The unconditional counterpart of this conditioning as CogView3 builds it: an all-zero context of the
  /// same shape and the same vector (official §2.1, §2.2, §11.1).
  public var zeroContext: Conditioning {
    Conditioning(context: context.map { Tensor(zeros: $0.shape) }, vector: vector)
  }

  /// The batch extent implied by the tensors (nil when there are none).
  public var batch: Int? { context?.shape.first ?? vector?.shape.first }

  /// Concatenation along the batch axis, in order (CFG uses `[uncond, cond]`). Every part must carry the
  /// same fields.
  public static func batched(_ parts: [Conditioning]) throws -> Conditioning {
    func join(_ field: KeyPath<Conditioning, Tensor?>, _ name: String) throws -> Tensor? {
      let tensors = parts.map { $0[keyPath: field] }
      if tensors.allSatisfy({ $0 == nil }) { return nil }
      let present = tensors.compactMap { $0 }
      try check(
        present.count == tensors.count, "Conditioning.batched", "\(name) is set on some parts but not on all")
      return try Ops.concat(present, axis: 0)
    }
    return Conditioning(context: try join(\.context, "context"), vector: try join(\.vector, "vector"))
  }
}

/// The SDXL-style size and crop micro-conditioning of CogView3 (official §2.2).
public enum SizeConditioning {
  /// Width of each scalar's sinusoid.
  public static let embeddingDim = 256

  /// y = [ts(H_orig), ts(W_orig), ts(crop_top), ts(crop_left), ts(H_tgt), ts(W_tgt)], each the 256-wide
  /// cos-first timestep sinusoid, concatenated to `[1, 1536]` (sgm `ConcatTimestepEmbedderND`, config order
  /// original_size, crop_coords_top_left, target_size). CogView3 uses size = target = the image size, crop 0.
  public static func vector(
    originalSize: (height: Int, width: Int), cropTopLeft: (top: Int, left: Int) = (0, 0),
    targetSize: (height: Int, width: Int)
  ) -> Tensor {
    let scalars = [
      originalSize.height, originalSize.width, cropTopLeft.top, cropTopLeft.left, targetSize.height,
      targetSize.width,
    ].map(Float.init)
    let rows = Embeddings.timestep(scalars, dim: embeddingDim)  // [6, 256]
    // Row-major [6, 256] is already the concatenation in order; only the shape changes.
    return (try? rows.reshaped([1, 6 * embeddingDim])) ?? rows
  }

  /// The vector for a square image of `size` pixels, as `sample_unet.py` builds it (official §2.2).
  public static func vector(imageSize size: Int) -> Tensor {
    vector(originalSize: (size, size), targetSize: (size, size))
  }

  /// `vector` repeated over a batch: `[B, 1536]`.
  public static func repeated(_ y: Tensor, batch: Int) throws -> Tensor {
    try check(batch >= 1, "SizeConditioning.repeated", "batch must be ≥ 1, got \(batch)")
    return try Ops.concat(Array(repeating: y, count: batch), axis: 0)
  }
}

/// One call of the ε-prediction network: everything the UNet's forward takes.
public struct ModelInput: Sendable {
  /// The scaled network input x·c_in = x/√(σ²+1), `[B, C, H, W]` (the usual DDPM x_t).
  public var x: Tensor
  /// The integer DDPM timestep per batch item (the σ table index, official §3.2).
  public var timesteps: [Int]
  /// Context and vector conditioning, batched like `x`.
  public var conditioning: Conditioning
  /// For the distilled models only: the guidance embedding `[B, w_dim]` the UNet's `w_proj` consumes
  /// (official §7); nil for the base and relay models.
  public var guidanceEmbedding: Tensor?
}

/// An ε-prediction network (the UNet behind a closure, so Diffusion never imports Models): returns ε̂
/// with the shape of `input.x`.
public typealias EpsilonModel = (_ input: ModelInput) throws -> Tensor
