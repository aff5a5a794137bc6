import XCTest

@testable import Diffusion
@testable import Tensor

/// Mixture-of-Diffusers tiling of the relay sampler.
final class TilingTests: XCTestCase {
  func testGridLayout() throws {
    let l = try TileLayout.grid(height: 20, width: 33, tileHeight: 8, tileWidth: 12, overlap: 3)
    let ys = Array(Set(l.tiles.map(\.y))).sorted()
    let xs = Array(Set(l.tiles.map(\.x))).sorted()
    XCTAssertEqual(ys.first, 0)
    XCTAssertEqual(ys.last, 20 - 8, "last row flush with the edge")
    XCTAssertEqual(xs.last, 33 - 12, "last column flush with the edge")
    XCTAssertEqual(ys.count, 4)  // ⌈(20 − 3)/(8 − 3)⌉
    XCTAssertEqual(xs.count, 4)  // ⌈(33 − 3)/(12 − 3)⌉
    for (a, b) in zip(ys, ys.dropFirst()) { XCTAssertGreaterThanOrEqual(a + 8 - b, 3) }
    for (a, b) in zip(xs, xs.dropFirst()) { XCTAssertGreaterThanOrEqual(a + 12 - b, 3) }
    XCTAssertTrue(l.tiles.allSatisfy { $0.height == 8 && $0.width == 12 })
    var covered = Set<Int>()
    for t in l.tiles { for y in t.yRange { for x in t.xRange { covered.insert(y * 33 + x) } } }
    XCTAssertEqual(covered.count, 20 * 33)
    let one = try TileLayout.grid(height: 16, width: 16, tileHeight: 64, tileWidth: 64, overlap: 32)
    XCTAssertEqual(one.tiles, [TileRect(y: 0, x: 0, height: 16, width: 16)])
    XCTAssertThrowsError(try TileLayout.grid(height: 20, width: 20, tileHeight: 8, tileWidth: 8, overlap: 8))
    XCTAssertThrowsError(try TileLayout.grid(height: 0, width: 20, tileHeight: 8, tileWidth: 8, overlap: 2))
  }

  func testGaussianWeightsHaveSigmaOneTenthOfTile() {
    let w = TileLayout.gaussianWeights(height: 21, width: 11)
    XCTAssertEqual(w.count, 21 * 11)
    // Centre (10, 5) is 1; one σ = 2.1 rows is e^−½; symmetric; edge ≈ e^−12.5·(20/21)².
    XCTAssertEqual(w[10 * 11 + 5], 1, accuracy: 1e-15)
    let gy = (0..<21).map { w[$0 * 11 + 5] }
    XCTAssertEqual(gy, gy.reversed())
    XCTAssertEqual(gy[0], Foundation.exp(-0.5 * pow(10 / 2.1, 2)), accuracy: 1e-15)
    XCTAssertEqual(w[5], Foundation.exp(-0.5 * pow(10 / 2.1, 2)), accuracy: 1e-15)
    XCTAssertEqual(w[10 * 11], Foundation.exp(-0.5 * pow(5 / 1.1, 2)), accuracy: 1e-15)
  }

  /// A denoiser that mixes neighbouring pixels (so tiles see different contexts at their borders).
  static let spatialDenoiser: TileDenoiser = { x, sigma, _ in
    let (h, w) = (x.shape[2], x.shape[3])
    var out = x
    for p in 0..<(x.shape[0] * x.shape[1]) {
      for y in 0..<h {
        for xx in 0..<w {
          let i = (p * h + y) * w + xx
          let right = xx + 1 < w ? x.data[i + 1] : 0
          let down = y + 1 < h ? x.data[i + w] : 0
          out.data[i] = tanh(0.5 * x.data[i] + 0.2 * right - 0.1 * down) / (1 + sigma)
        }
      }
    }
    return out
  }

  func relayInputs(_ shape: [Int]) -> (Tensor, Tensor) {
    (pseudoRandom(shape, seed: 81, scale: 0.8), pseudoRandom(shape, seed: 82))
  }

  func testOneTileCoveringTheCanvasEqualsUntiledExactly() throws {
    let (z, eps) = relayInputs([1, 4, 12, 10])
    let untiled = try RelaySampler().sample(
      { x, s in try Self.spatialDenoiser(x, s, TileRect(y: 0, x: 0, height: 12, width: 10)) }, lowLatent: z, noise: eps)
    for tile in [12, 64] {
      let layout = try TileLayout.grid(height: 12, width: 10, tileHeight: tile, tileWidth: tile, overlap: 4)
      XCTAssertEqual(layout.tiles.count, 1)
      let tiled = try RelaySampler().sample(
        MixtureOfDiffusers(layout: layout).denoiser(Self.spatialDenoiser), lowLatent: z, noise: eps)
      XCTAssertEqual(tiled, untiled, "bit-identical")
    }
  }

  func testTileOrderDoesNotMatter() throws {
    let (z, eps) = relayInputs([2, 3, 17, 23])
    let layout = try TileLayout.grid(height: 17, width: 23, tileHeight: 8, tileWidth: 9, overlap: 4)
    XCTAssertGreaterThan(layout.tiles.count, 6)
    let rowMajor = try RelaySampler().sample(
      MixtureOfDiffusers(layout: layout).denoiser(Self.spatialDenoiser), lowLatent: z, noise: eps)
    var order = Array(layout.tiles.indices)
    order.reverse()
    order.swapAt(1, 4)
    let shuffled = try RelaySampler().sample(
      MixtureOfDiffusers(layout: layout, order: order).denoiser(Self.spatialDenoiser), lowLatent: z, noise: eps)
    XCTAssertEqual(shuffled, rowMajor)
    // And tiling does change a non-local denoiser's result (so the identities above are not vacuous).
    let untiled = try RelaySampler().sample(
      { x, s in try Self.spatialDenoiser(x, s, TileRect(y: 0, x: 0, height: 17, width: 23)) }, lowLatent: z,
      noise: eps)
    XCTAssertGreaterThan(maxAbsDiff(untiled.data, rowMajor.data), 1e-6)
  }

  /// For a pixel-local denoiser every tile predicts the same D, so the blend is D and tiled == untiled.
  func testPointwiseDenoiserTiledEqualsUntiled() throws {
    let (z, eps) = relayInputs([1, 4, 19, 26])
    let local: TileDenoiser = { x, sigma, _ in Ops.affine(x, scale: 0.49 / (0.49 + sigma * sigma), shift: 0.1) }
    let layout = try TileLayout.grid(height: 19, width: 26, tileHeight: 8, tileWidth: 8, overlap: 3)
    var largest = 0
    var seen = Set<TileRect>()
    let tiled = try RelaySampler().sample(
      MixtureOfDiffusers(layout: layout).denoiser { x, s, tile in
        largest = max(largest, x.count)
        seen.insert(tile)
        return try local(x, s, tile)
      }, lowLatent: z, noise: eps)
    let untiled = try RelaySampler().sample(
      { x, s in try local(x, s, TileRect(y: 0, x: 0, height: 19, width: 26)) }, lowLatent: z, noise: eps)
    XCTAssertLessThanOrEqual(maxAbsDiff(tiled.data, untiled.data), 1e-6)
    XCTAssertEqual(largest, 4 * 8 * 8, "the model only sees tile-sized inputs")
    XCTAssertEqual(seen, Set(layout.tiles))
  }

  func testShapeErrors() throws {
    let layout = try TileLayout.grid(height: 8, width: 8, tileHeight: 4, tileWidth: 4, overlap: 1)
    let den = MixtureOfDiffusers(layout: layout).denoiser { x, _, _ in x }
    XCTAssertThrowsError(try den(Tensor(zeros: [1, 1, 8, 9]), 1))
    let bad = MixtureOfDiffusers(layout: layout).denoiser { _, _, _ in Tensor(zeros: [1]) }
    XCTAssertThrowsError(try bad(Tensor(zeros: [1, 1, 8, 8]), 1))
    XCTAssertThrowsError(
      try MixtureOfDiffusers(layout: layout, order: [0]).denoiser { x, _, _ in x }(Tensor(zeros: [1, 1, 8, 8]), 1))
  }
}
