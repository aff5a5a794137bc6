import Foundation
import Tensor

/// A rectangle of a canvas, in that canvas' pixels (latent pixels for latents).
public struct TileRect: Hashable, Sendable, Codable {
  public var y: Int, x: Int, height: Int, width: Int

  public init(y: Int, x: Int, height: Int, width: Int) {
    self.y = y
    self.x = x
    self.height = height
    self.width = width
  }

  public var yRange: Range<Int> { y..<(y + height) }
  public var xRange: Range<Int> { x..<(x + width) }
}

/// Where tiles sit on one axis: `count = ⌈(L − overlap)/(tile − overlap)⌉` tiles of length `tile`, spread
/// evenly, the first at 0 and the last flush with the edge (pkuliyi2015 Tiled Diffusion's grid,
/// reference/workflow-engines.md §c), starts c·(L − tile)/(count − 1) rounded down. A tile at least as
/// long as the axis becomes one tile covering it.
func tileStarts(length: Int, tile: Int, overlap: Int, op: String) throws -> (starts: [Int], size: Int) {
  try check(length >= 1, op, "canvas length must be positive, got \(length)")
  try check(tile >= 1, op, "tile size must be positive, got \(tile)")
  if tile >= length { return ([0], length) }
  try check(overlap >= 0 && overlap < tile, op, "overlap must be in 0..<\(tile) (the tile size), got \(overlap)")
  let count = (length - overlap + (tile - overlap) - 1) / (tile - overlap)
  if count <= 1 { return ([0], tile) }
  return ((0..<count).map { $0 * (length - tile) / (count - 1) }, tile)
}

/// The tiles of a Mixture-of-Diffusers canvas.
public struct TileLayout: Hashable, Sendable, Codable {
  /// Canvas extent.
  public let height: Int, width: Int
  /// The tiles, row-major; they cover the canvas and all have the same size.
  public let tiles: [TileRect]

  /// Tiles of `tileHeight × tileWidth` overlapping by at least `overlap` on each axis, the last row and column
  /// flush with the canvas edge. A tile larger than the canvas is clipped to it (one tile on that axis).
  public static func grid(height: Int, width: Int, tileHeight: Int, tileWidth: Int, overlap: Int) throws -> TileLayout {
    let op = "TileLayout.grid"
    let (ys, th) = try tileStarts(length: height, tile: tileHeight, overlap: overlap, op: op)
    let (xs, tw) = try tileStarts(length: width, tile: tileWidth, overlap: overlap, op: op)
    return TileLayout(
      height: height, width: width,
      tiles: ys.flatMap { y in xs.map { x in TileRect(y: y, x: x, height: th, width: tw) } })
  }

  /// Mixture-of-Diffusers weights of a tile: a separable Gaussian with σ = 0.1·extent on each axis, centred
  /// at (extent−1)/2, row-major `[height·width]` in float64. The constant 1/√(2π·var) of the original
  /// (`StableDiffusionTilingPipeline._gaussian_weights`, var = 0.01) cancels in Σ W·D / Σ W and is left out.
  public static func gaussianWeights(height: Int, width: Int) -> [Double] {
    func axis(_ n: Int) -> [Double] {
      let mu = Double(n - 1) / 2
      let sd = 0.1 * Double(n)
      return (0..<n).map { i in
        let d = Double(i) - mu
        return Foundation.exp(-d * d / (2 * sd * sd))
      }
    }
    let gy = axis(height)
    let gx = axis(width)
    return gy.flatMap { a in gx.map { a * $0 } }
  }
}

/// A denoiser that runs on one tile: the tile's crop of x `[B, C, h, w]`, σ, and where the tile sits (so a
/// caller can, e.g., set the crop conditioning per tile). Returns D for the crop.
public typealias TileDenoiser = (_ x: Tensor, _ sigma: Float, _ tile: TileRect) throws -> Tensor

/// Mixture of Diffusers (Jiménez 2023; reference/workflow-engines.md §c "Mixture of Diffusers [M1]") on
/// the x0 prediction: every step, each tile is denoised on its own and the canvas prediction is
/// D = Σ_i W_i⊙D_i / Σ_i W_i with Gaussian W_i; the sampler then makes one update over the whole canvas.
/// The model only ever sees tile-sized inputs, so its memory is bounded by the tile size; the canvas
/// buffers are `[B, C, H, W]` latents.
///
/// Exactness: W·D is a product of two float32 numbers, exact in float64, and the sums run in float64, so
/// one tile covering the canvas gives W·D/W = D bit for bit, and the tile order changes the result only by
/// float64 rounding (the tests see none).
public struct MixtureOfDiffusers: Sendable {
  public let layout: TileLayout
  /// The order tiles are visited in (indices into `layout.tiles`); nil = row-major. For tests.
  public var order: [Int]?

  public init(layout: TileLayout, order: [Int]? = nil) {
    self.layout = layout
    self.order = order
  }

  /// The blended canvas denoiser for the samplers.
  public func denoiser(_ tileDenoiser: @escaping TileDenoiser) -> Denoiser {
    let layout = layout
    let order = order ?? Array(layout.tiles.indices)
    let weights = Dictionary(
      Set(layout.tiles.map { [$0.height, $0.width] }).map {
        ($0, TileLayout.gaussianWeights(height: $0[0], width: $0[1]))
      }, uniquingKeysWith: { a, _ in a })
    return { x, sigma in
      let op = "MixtureOfDiffusers"
      try check(
        x.rank == 4 && x.shape[2] == layout.height && x.shape[3] == layout.width, op,
        "input \(x.shape) does not match the \(layout.height)×\(layout.width) tile layout")
      try check(order.sorted() == Array(layout.tiles.indices), op, "tile order must be a permutation of the tiles")
      let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
      var acc = [Double](repeating: 0, count: x.count)
      var wsum = [Double](repeating: 0, count: h * w)
      for t in order {
        let tile = layout.tiles[t]
        let crop = try cropBCHW(x, tile)
        let d = try tileDenoiser(crop, sigma, tile)
        try checkShapes(d.shape, crop.shape, op, "the tile denoiser must return the tile's shape")
        let wt = weights[[tile.height, tile.width]] ?? []
        for yy in 0..<tile.height {
          for xx in 0..<tile.width {
            wsum[(tile.y + yy) * w + tile.x + xx] += wt[yy * tile.width + xx]
          }
        }
        for plane in 0..<(b * c) {
          for yy in 0..<tile.height {
            let src = (plane * tile.height + yy) * tile.width
            let dst = (plane * h + tile.y + yy) * w + tile.x
            let wrow = yy * tile.width
            for xx in 0..<tile.width {
              acc[dst + xx] += wt[wrow + xx] * Double(d.data[src + xx])
            }
          }
        }
      }
      var out = Tensor(zeros: x.shape)
      for plane in 0..<(b * c) {
        for p in 0..<(h * w) {
          out.data[plane * h * w + p] = Float(acc[plane * h * w + p] / wsum[p])
        }
      }
      return out
    }
  }
}

/// The `[B, C, rect]` crop of a `[B, C, H, W]` tensor; the rectangle must lie inside.
func cropBCHW(_ x: Tensor, _ r: TileRect) throws -> Tensor {
  try check(
    x.rank == 4 && r.y >= 0 && r.x >= 0 && r.height >= 0 && r.width >= 0 && r.y + r.height <= x.shape[2]
      && r.x + r.width <= x.shape[3], "crop", "rectangle \(r) is not inside \(x.shape)")
  let (h, w) = (x.shape[2], x.shape[3])
  let planes = x.shape[0] * x.shape[1]
  var out = Tensor(zeros: [x.shape[0], x.shape[1], r.height, r.width])
  x.withUnsafeBufferPointer { px in
    out.withUnsafeMutableBufferPointer { po in
      for p in 0..<planes {
        for yy in 0..<r.height {
          let src = px.baseAddress! + (p * h + r.y + yy) * w + r.x
          let dst = po.baseAddress! + (p * r.height + yy) * r.width
          dst.update(from: src, count: r.width)
        }
      }
    }
  }
  return out
}

/// Writes `src`'s `[B, C, from]` block into `dst` at `to` (same extent).
func pasteBCHW(_ src: Tensor, from: TileRect, into dst: inout Tensor, at to: TileRect) throws {
  try check(
    src.rank == 4 && dst.rank == 4 && src.shape[0] == dst.shape[0] && src.shape[1] == dst.shape[1]
      && from.height == to.height && from.width == to.width && from.y >= 0 && from.x >= 0
      && from.y + from.height <= src.shape[2] && from.x + from.width <= src.shape[3] && to.y >= 0 && to.x >= 0
      && to.y + to.height <= dst.shape[2] && to.x + to.width <= dst.shape[3], "paste",
    "cannot paste \(from) of \(src.shape) at \(to) of \(dst.shape)")
  let (sh, sw, dh, dw) = (src.shape[2], src.shape[3], dst.shape[2], dst.shape[3])
  let planes = src.shape[0] * src.shape[1]
  src.withUnsafeBufferPointer { ps in
    dst.withUnsafeMutableBufferPointer { pd in
      for p in 0..<planes {
        for yy in 0..<from.height {
          let s = ps.baseAddress! + (p * sh + from.y + yy) * sw + from.x
          let d = pd.baseAddress! + (p * dh + to.y + yy) * dw + to.x
          d.update(from: s, count: from.width)
        }
      }
    }
  }
}
