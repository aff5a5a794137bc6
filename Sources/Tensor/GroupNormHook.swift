/// A GroupNorm as a replaceable function: `(x [B, C, H, W], groups, weight, bias, eps)` → normalized x.
///
/// Networks that may run tiled (the KL autoencoder in Models) route every GroupNorm through a value of this
/// type instead of calling `Ops.groupNorm` directly. A tiled run (Diffusion's `TiledGroupNormRunner`) hands
/// them a function that records each tile's statistics or normalizes with the statistics pooled over the
/// whole image, identifying the norms by the order of the calls. The type lives here, in Tensor, so that
/// Models and Diffusion share it without importing each other.
public typealias GroupNormFunction = (
  _ x: Tensor, _ groups: Int, _ weight: Tensor?, _ bias: Tensor?, _ eps: Float
) throws -> Tensor

/// A contiguous piece of a tileable network, `[B, C, h, w]` → `[B, C', h', w']`, whose GroupNorms all go
/// through the given function (the contract is spelled out in Diffusion's TiledGroupNorm.swift).
public typealias GroupNormStage = (_ x: Tensor, _ groupNorm: @escaping GroupNormFunction) throws -> Tensor

extension Ops {
  /// `Ops.groupNorm` as a `GroupNormFunction`: what a network uses when it runs untiled.
  public static let standardGroupNorm: GroupNormFunction = { x, groups, weight, bias, eps in
    try Ops.groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps)
  }
}

/// Runs `stages` on `input` `[B, C, H, W]` tile by tile with GroupNorm statistics pooled over the whole
/// canvas. `halos[s]` is the halo (input-canvas pixels) the input of stage s needs — the receptive radius
/// of stages s… — so a tile can shrink towards its core as it goes; `alignment` is the stages' total
/// down-sampling factor (tile boundaries are multiples of it). Diffusion's `TiledGroupNormRunner.stageRunner`
/// makes one; Models' `TiledAutoencoder` calls it, so neither target imports the other.
public typealias TiledStageRunner = (
  _ stages: [GroupNormStage], _ input: Tensor, _ halos: [Int], _ alignment: Int
) throws -> Tensor
