import Foundation
import Tensor

// Tiled VAE encode/decode with exact GroupNorm statistics.
//
// The contract a network (the VAE in Models) satisfies to run tiled — stated with Tensor types only, so
// Models never imports Diffusion and Nodes glues the two:
//
// 1. It is given as a sequence of stages `(Tensor, GroupNormFunction) throws -> Tensor`, each taking and
//    returning `[B, C, h, w]`. A whole network may be one stage; splitting it at ResnetBlock boundaries
//    makes tiling cheaper (see `TiledGroupNormRunner`). The SDXL VAE decoder, for example: stage 0 =
//    post_quant_conv … mid.block_2 and stage 1… = one stage per up-block ResnetBlock/upsampler, then
//    norm_out + swish + conv_out. A mid-block attention over all H·W tokens is global, so it cannot be
//    tiled: run the stages up to and including it untiled on the (small) latent canvas and tile the rest.
//    In the encoder it sits at the end: tile the stages before it, run it and what follows untiled.
// 2. Every GroupNorm is called through the `GroupNormFunction` it is handed, never `Ops.groupNorm`
//    directly, with the same sequence of calls (count, groups, eps) for every input size. The default the
//    network uses when run untiled is `Ops.standardGroupNorm`. Both types (`GroupNormFunction`,
//    `GroupNormStage`) live in Tensor (GroupNormHook.swift), shared with Models.
// 3. Spatial operations are local and size-following: convolutions with their usual zero padding
//    (3×3 pad 1, 1×1, the VAE downsample's (0,1,0,1) pad + stride 2), nearest ×2 upsampling, pointwise
//    activations, residual adds. An input whose extent is a multiple of the total down-sampling factor
//    gives an output of extent × the overall scale, on every tile.
// 4. The caller chooses a halo (input pixels) at least the network's receptive radius: then the zero
//    padding a convolution applies at an interior tile edge never reaches the tile's core. For the SDXL
//    VAE decoder tail that is 15 latent pixels (see `receptiveRadius` for how to count it).
//
// What the runner then guarantees: every GroupNorm uses the mean and biased variance of the whole image,
// pooled from the per-tile statistics of each tile's own core (the cores partition the canvas, so nothing
// is counted twice), so tiled == untiled up to float32 rounding; only tile-sized tensors pass through the
// network, and with a `FileTileStateStore` (or none) the memory in use is bounded by the tile size.

/// Receptive radius, in input pixels, of a chain of convolutions: `convsPerScale[s]` 3×3 convolutions run
/// at `scale[s]` × the input resolution contribute ⌈convs / scale⌉ input pixels each. A helper to pick the
/// halo; e.g. the SDXL decoder tail: mid.block_2 (2 convs) + up.3 (6 convs) at ×1, 1 + 6 at ×2, 1 + 6 at
/// ×4, 1 + 6 + conv_out at ×8 gives 8 + 4 + 2 + 1 = 15.
public func receptiveRadius(_ convsAtScale: [(convs: Int, scale: Int)]) -> Int {
  convsAtScale.reduce(0) { $0 + ($1.convs + $1.scale - 1) / max($1.scale, 1) }
}

/// Per-(batch, group) statistics: count, mean and sum of squared deviations (M2), in float64.
public struct GroupStatistics: Sendable, Equatable {
  public var count: [Double]
  public var mean: [Double]
  public var m2: [Double]

  init(slots: Int) {
    count = Array(repeating: 0, count: slots)
    mean = count
    m2 = count
  }

  /// Adds another partition's statistics (Chan et al.'s pairwise update). The pooled variance equals
  /// Σ p_i(σ_i² + μ_i²) − μ² with p_i = n_i/Σn (reference/workflow-engines.md §c, "our fix"), computed as
  /// Σ p_i σ_i² + Σ p_i (μ_i − μ)², which is the same number without the cancellation.
  mutating func merge(count nb: Double, mean mb: Double, m2 m2b: Double, slot: Int) {
    let na = count[slot]
    let n = na + nb
    guard n > 0 else { return }
    let delta = mb - mean[slot]
    mean[slot] += delta * nb / n
    m2[slot] += m2b + delta * delta * na * nb / n
    count[slot] = n
  }

  /// Biased variance of a slot.
  public func variance(_ slot: Int) -> Double { count[slot] > 0 ? m2[slot] / count[slot] : 0 }
}

/// Where the runner keeps each tile's intermediate tensor between stages.
public protocol TileStateStore: AnyObject {
  /// Remembers that `tile` has finished stage `stage − 1`; `x` is the input of `stage`.
  func save(tile: Int, stage: Int, _ x: Tensor) throws
  /// The last saved state of `tile`, if any.
  func load(tile: Int) throws -> (stage: Int, x: Tensor)?
  /// Forgets everything (called at the start and end of a run).
  func clear() throws
}

/// Keeps tile states in memory: fastest, but holds a whole canvas of activations.
public final class MemoryTileStateStore: TileStateStore {
  private var states: [Int: (Int, Tensor)] = [:]
  public init() {}
  public func save(tile: Int, stage: Int, _ x: Tensor) { states[tile] = (stage, x) }
  public func load(tile: Int) -> (stage: Int, x: Tensor)? { states[tile].map { (stage: $0.0, x: $0.1) } }
  public func clear() { states = [:] }
}

/// Keeps tile states in raw float32 files under a directory: memory stays bounded by one tile, the disk
/// holds about one canvas of the largest activation.
public final class FileTileStateStore: TileStateStore {
  public let directory: URL
  private var shapes: [Int: (stage: Int, shape: [Int])] = [:]

  public init(directory: URL) throws {
    self.directory = directory
    do {
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    } catch {
      throw DiffusionError.invalidArgument(
        op: "FileTileStateStore", detail: "cannot create \(directory.path): \(error.localizedDescription)")
    }
  }

  private func url(_ tile: Int) -> URL { directory.appendingPathComponent("tile-\(tile).f32") }

  public func save(tile: Int, stage: Int, _ x: Tensor) throws {
    let data = x.withUnsafeBufferPointer { Data(buffer: $0) }
    do { try data.write(to: url(tile)) } catch {
      throw DiffusionError.invalidArgument(
        op: "FileTileStateStore", detail: "cannot write \(url(tile).path): \(error.localizedDescription)")
    }
    shapes[tile] = (stage, x.shape)
  }

  public func load(tile: Int) throws -> (stage: Int, x: Tensor)? {
    guard let (stage, shape) = shapes[tile] else { return nil }
    let data: Data
    do { data = try Data(contentsOf: url(tile)) } catch {
      throw DiffusionError.invalidArgument(
        op: "FileTileStateStore", detail: "cannot read \(url(tile).path): \(error.localizedDescription)")
    }
    try check(
      data.count == shape.elementCount * MemoryLayout<Float>.size, "FileTileStateStore",
      "\(url(tile).path) holds \(data.count) bytes, expected \(shape.elementCount * 4)")
    let x = Tensor(uninitializedShape: shape) { dst in _ = data.copyBytes(to: dst) }
    return (stage, x)
  }

  public func clear() throws {
    for tile in shapes.keys { try? FileManager.default.removeItem(at: url(tile)) }
    shapes = [:]
  }
}

/// The tiles of a tiled VAE pass: cores that partition the input canvas, each grown by a halo.
public struct HaloTileLayout: Hashable, Sendable {
  public let height: Int, width: Int
  /// The partition of the canvas: every pixel is in exactly one core.
  public let cores: [TileRect]
  /// Each core grown by the halo and clipped to the canvas: what the network runs on.
  public let regions: [TileRect]
  /// Tile boundaries and halos are multiples of this (the network's total down-sampling factor).
  public let alignment: Int

  /// Each core grown by `halo` pixels (rounded up to a multiple of the alignment) and clipped to the canvas.
  public func regions(halo: Int) -> [TileRect] {
    let pad = (max(halo, 0) + alignment - 1) / alignment * alignment
    return cores.map { core in
      let y0 = max(0, core.y - pad)
      let y1 = min(height, core.y + core.height + pad)
      let x0 = max(0, core.x - pad)
      let x1 = min(width, core.x + core.width + pad)
      return TileRect(y: y0, x: x0, height: y1 - y0, width: x1 - x0)
    }
  }

  /// Cores of at most `tile` pixels per axis (boundaries multiples of `alignment`, the network's total
  /// down-sampling factor, e.g. 8 for the VAE encoder on pixels and 1 for the decoder on latents), grown by
  /// `halo` pixels (rounded up to a multiple of `alignment`).
  public static func grid(height: Int, width: Int, tile: Int, halo: Int, alignment: Int = 1) throws -> HaloTileLayout {
    let op = "HaloTileLayout.grid"
    try check(alignment >= 1, op, "alignment must be ≥ 1, got \(alignment)")
    try check(
      height >= 1 && width >= 1 && height % alignment == 0 && width % alignment == 0, op,
      "canvas \(height)×\(width) must be positive multiples of the alignment \(alignment)")
    try check(tile >= alignment, op, "tile \(tile) must be at least the alignment \(alignment)")
    try check(halo >= 0, op, "halo must be ≥ 0, got \(halo)")
    let aligned = (tile / alignment) * alignment
    func bounds(_ length: Int) -> [Int] {
      let n = (length + aligned - 1) / aligned
      return (0...n).map { c in c == n ? length : (c * length / n) / alignment * alignment }
    }
    let by = bounds(height)
    let bx = bounds(width)
    var cores = [TileRect]()
    for i in 0..<(by.count - 1) {
      for j in 0..<(bx.count - 1) {
        cores.append(TileRect(y: by[i], x: bx[j], height: by[i + 1] - by[i], width: bx[j + 1] - bx[j]))
      }
    }
    let plain = HaloTileLayout(height: height, width: width, cores: cores, regions: cores, alignment: alignment)
    return HaloTileLayout(
      height: height, width: width, cores: cores, regions: plain.regions(halo: halo), alignment: alignment)
  }
}

/// Runs a tileable network (the contract at the top of this file) tile by tile with exact GroupNorm
/// statistics.
///
/// GroupNorm k needs the statistics of its input over the whole image, which depend on the exact
/// normalization of GroupNorms 0…k−1. So the runner works in passes: pass k runs every tile from its last
/// saved stage boundary up to GroupNorm k, where the tile adds the statistics of its core to a pooled
/// accumulator and stops; GroupNorms before k normalize with their pooled statistics. After the pass the
/// pooled statistics of GroupNorm k are known. A tile that completes a stage saves its tensor in the store,
/// so the next pass resumes there; with a stage per ResnetBlock each stage runs (its GroupNorm count + 1)
/// times, mostly truncated, about 1.5× the untiled work. Without a store each pass restarts from the input
/// (quadratic in the GroupNorm count, but no state at all). The last pass, with every statistic known,
/// runs all tiles to the end and pastes each tile's core into the output.
public struct TiledGroupNormRunner {
  public var layout: HaloTileLayout
  public var stages: [GroupNormStage]
  /// Where tile states are kept between passes; nil = recompute from the input each pass. The default
  /// memory store holds every tile's activation (about a canvas of the widest layer): right for small
  /// canvases; for 2048²/4096² decodes use a `FileTileStateStore` or nil to keep memory at tile size.
  public var store: TileStateStore?
  /// The halo (canvas pixels) the input of each stage needs — the receptive radius of that stage and all
  /// after it, so non-increasing. A tile is cropped to its core grown by the next stage's halo after every
  /// stage, so late full-resolution stages (which need a pixel or two) do not compute the early stages'
  /// wide halo. nil = every stage runs on the layout's regions.
  public var stageHalos: [Int]?

  public init(
    layout: HaloTileLayout, stages: [GroupNormStage], store: TileStateStore? = MemoryTileStateStore(),
    stageHalos: [Int]? = nil
  ) {
    self.layout = layout
    self.stages = stages
    self.store = store
    self.stageHalos = stageHalos
  }

  private struct StopAtStatistics: Error {}

  /// Runs the network on `input` `[B, C, H, W]` (H×W = the layout's canvas).
  public func run(_ input: Tensor) throws -> Tensor {
    let op = "TiledGroupNormRunner"
    try check(
      input.rank == 4 && input.shape[2] == layout.height && input.shape[3] == layout.width, op,
      "input \(input.shape) does not match the \(layout.height)×\(layout.width) tile layout")
    try check(!stages.isEmpty, op, "no stages to run")
    let regionsAt: [[TileRect]]
    if let stageHalos {
      try check(
        stageHalos.count == stages.count && zip(stageHalos, stageHalos.dropFirst()).allSatisfy { $0 >= $1 }
          && stageHalos.allSatisfy { $0 >= 0 }, op,
        "stageHalos must give one non-increasing, non-negative halo per stage (\(stages.count)), got \(stageHalos)")
      regionsAt = stageHalos.map { layout.regions(halo: $0) }
    } else {
      regionsAt = Array(repeating: layout.regions, count: stages.count)
    }
    try store?.clear()
    defer { try? store?.clear() }
    var pooled: [GroupStatistics] = []
    // GroupNorm calls before each stage, learned as tiles complete stages.
    var normsBefore: [Int: Int] = [0: 0]
    var output: Tensor?
    var outScale: (num: Int, den: Int)?
    while true {
      let target = pooled.count
      var accumulator: GroupStatistics?
      var stopped = 0
      for t in layout.regions.indices {
        let core = layout.cores[t]
        var (stage, x) = try store?.load(tile: t) ?? (0, cropBCHW(input, regionsAt[0][t]))
        var region = regionsAt[min(stage, stages.count - 1)][t]
        guard var normIndex = normsBefore[stage] else {
          throw DiffusionError.invalidArgument(op: op, detail: "internal: no GroupNorm count for stage \(stage)")
        }
        let hook: GroupNormFunction = { h, groups, weight, bias, eps in
          defer { normIndex += 1 }
          let coreRect = try Self.localRect(core, in: region, extent: (h.shape[2], h.shape[3]), op: op)
          if normIndex < target {
            return try Self.normalize(h, groups: groups, stats: pooled[normIndex], weight: weight, bias: bias, eps: eps)
          }
          if accumulator == nil { accumulator = GroupStatistics(slots: h.shape[0] * groups) }
          try Self.accumulate(h, groups: groups, core: coreRect, into: &accumulator!, op: op)
          throw StopAtStatistics()
        }
        do {
          while stage < stages.count {
            x = try stages[stage](x, hook)
            try check(x.rank == 4, op, "stage \(stage) returned \(x.shape), expected [B, C, h, w]")
            stage += 1
            if let known = normsBefore[stage], known != normIndex {
              throw DiffusionError.invalidArgument(
                op: op, detail: "stage \(stage - 1) made a different number of GroupNorm calls on different tiles")
            }
            normsBefore[stage] = normIndex
            if stage < stages.count {
              let next = regionsAt[stage][t]
              if next != region {
                x = try cropBCHW(x, Self.localRect(next, in: region, extent: (x.shape[2], x.shape[3]), op: op))
                region = next
              }
              try store?.save(tile: t, stage: stage, x)
            }
          }
        } catch is StopAtStatistics {
          stopped += 1
          continue
        }
        // All statistics were known: this tile's output is final.
        let scale = try Self.scale(of: x, region: region, op: op)
        if output == nil {
          outScale = scale
          try check(
            layout.height * scale.num % scale.den == 0 && layout.width * scale.num % scale.den == 0, op,
            "the output scale \(scale.num)/\(scale.den) does not map the canvas to whole pixels")
          output = Tensor(zeros: [
            x.shape[0], x.shape[1], layout.height * scale.num / scale.den, layout.width * scale.num / scale.den,
          ])
        }
        try check(
          outScale.map { $0.num * scale.den == scale.num * $0.den } ?? false, op,
          "tiles produced outputs at different scales")
        let local = try Self.localRect(core, in: region, extent: (x.shape[2], x.shape[3]), op: op)
        let scaled = TileRect(
          y: core.y * scale.num / scale.den, x: core.x * scale.num / scale.den, height: local.height,
          width: local.width)
        try pasteBCHW(x, from: local, into: &output!, at: scaled)
      }
      if stopped == 0, let output { return output }
      try check(
        stopped == layout.regions.count, op,
        "GroupNorm \(target) was reached by \(stopped) of \(layout.regions.count) tiles: the network must make the same GroupNorm calls on every tile"
      )
      guard let acc = accumulator else {
        throw DiffusionError.invalidArgument(op: op, detail: "internal: no statistics gathered for GroupNorm \(target)")
      }
      pooled.append(acc)
    }
  }

  /// The spatial scale of a tile tensor relative to its input region, as a reduced fraction; both axes must agree.
  static func scale(of x: Tensor, region: TileRect, op: String) throws -> (num: Int, den: Int) {
    func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
    let gy = gcd(x.shape[2], region.height)
    let gx = gcd(x.shape[3], region.width)
    let sy = (x.shape[2] / gy, region.height / gy)
    let sx = (x.shape[3] / gx, region.width / gx)
    try check(
      sy == sx, op,
      "tile \(region.height)×\(region.width) became \(x.shape[2])×\(x.shape[3]): the axes scale differently")
    return sy
  }

  /// The core's rectangle inside a tile tensor of the given extent (the region scaled to that extent).
  static func localRect(_ core: TileRect, in region: TileRect, extent: (Int, Int), op: String) throws -> TileRect {
    func map(_ v: Int, _ size: Int, _ e: Int) throws -> Int {
      try check(
        (v * e) % size == 0, op,
        "a tile boundary falls between pixels at a \(e)/\(size) scale: align the tiles to the down-sampling factor")
      return v * e / size
    }
    let y0 = try map(core.y - region.y, region.height, extent.0)
    let y1 = try map(core.y + core.height - region.y, region.height, extent.0)
    let x0 = try map(core.x - region.x, region.width, extent.1)
    let x1 = try map(core.x + core.width - region.x, region.width, extent.1)
    return TileRect(y: y0, x: x0, height: y1 - y0, width: x1 - x0)
  }

  /// Adds the statistics of `h`'s core to the accumulator, one slot per (batch, group).
  static func accumulate(_ h: Tensor, groups: Int, core: TileRect, into acc: inout GroupStatistics, op: String) throws {
    try check(
      h.rank == 4 && groups > 0 && h.shape[1] % groups == 0, op, "GroupNorm on \(h.shape) with \(groups) groups")
    try check(acc.count.count == h.shape[0] * groups, op, "GroupNorm shapes differ between tiles")
    let (b, c, hh, ww) = (h.shape[0], h.shape[1], h.shape[2], h.shape[3])
    let cpg = c / groups
    let n = Double(cpg * core.height * core.width)
    // Per-slot (mean, M2) in parallel, merged in slot order afterwards.
    var partial = [(Double, Double)](repeating: (0, 0), count: b * groups)
    h.withUnsafeBufferPointer { p in
      partial.withUnsafeMutableBufferPointer { out in
        let src = p.baseAddress!
        let dst = out.baseAddress!
        Parallel.forEach(b * groups) { slot in
          let (bi, g) = (slot / groups, slot % groups)
          var sum = 0.0
          for ch in (g * cpg)..<((g + 1) * cpg) {
            for y in core.yRange {
              let row = ((bi * c + ch) * hh + y) * ww
              for x in core.xRange { sum += Double(src[row + x]) }
            }
          }
          let mean = n > 0 ? sum / n : 0
          var m2 = 0.0
          for ch in (g * cpg)..<((g + 1) * cpg) {
            for y in core.yRange {
              let row = ((bi * c + ch) * hh + y) * ww
              for x in core.xRange {
                let d = Double(src[row + x]) - mean
                m2 += d * d
              }
            }
          }
          dst[slot] = (mean, m2)
        }
      }
    }
    for (slot, (mean, m2)) in partial.enumerated() { acc.merge(count: n, mean: mean, m2: m2, slot: slot) }
  }

  /// GroupNorm of a tile with given statistics; the same float32 arithmetic as `Ops.groupNorm`
  /// (scale = w/√(var+eps), shift = b − mean·scale, y = x·scale + shift).
  static func normalize(
    _ h: Tensor, groups: Int, stats: GroupStatistics, weight: Tensor?, bias: Tensor?, eps: Float
  ) throws -> Tensor {
    let op = "TiledGroupNormRunner.groupNorm"
    try check(
      h.rank == 4 && groups > 0 && h.shape[1] % groups == 0, op, "GroupNorm on \(h.shape) with \(groups) groups")
    try check(
      stats.count.count == h.shape[0] * groups, op,
      "statistics for \(stats.count.count) slots, tensor needs \(h.shape[0] * groups)")
    let (b, c) = (h.shape[0], h.shape[1])
    if let weight { try check(weight.shape == [c], op, "weight must be [\(c)], got \(weight.shape)") }
    if let bias { try check(bias.shape == [c], op, "bias must be [\(c)], got \(bias.shape)") }
    let cpg = c / groups
    let spatial = h.shape[2] * h.shape[3]
    var out = h
    let w = weight?.data
    let bb = bias?.data
    out.withUnsafeMutableBufferPointer { po in
      let dst = po.baseAddress!
      Parallel.forEach(b * groups) { slot in
        let (bi, g) = (slot / groups, slot % groups)
        let inv = Float(1 / (stats.variance(slot) + Double(eps)).squareRoot())
        let m = Float(stats.mean[slot])
        for ch in (g * cpg)..<((g + 1) * cpg) {
          let scale = inv * (w?[ch] ?? 1)
          let shift = (bb?[ch] ?? 0) - m * scale
          let base = (bi * c + ch) * spatial
          for s in 0..<spatial { dst[base + s] = dst[base + s] * scale + shift }
        }
      }
    }
    return out
  }
}

extension TiledGroupNormRunner {
  /// Where a `stageRunner` keeps tile states between passes.
  public enum StoreKind: Sendable {
    /// `MemoryTileStateStore`: fastest; holds about one canvas of the widest activation.
    case memory
    /// A `FileTileStateStore` in a fresh directory under `directory` (removed afterwards): memory bounded
    /// by the tile size, the disk holds about one canvas of the widest activation.
    case file(directory: URL)
    /// No store: every pass recomputes from the input (no state at all, quadratic in the GroupNorm count).
    case recompute
  }

  /// A `TiledStageRunner` (Tensor's Diffusion-free shape, used by Models' `TiledAutoencoder`) with cores of
  /// at most `tile` input pixels per axis.
  public static func stageRunner(tile: Int, store: StoreKind = .memory) -> TiledStageRunner {
    { stages, input, halos, alignment in
      try check(input.rank == 4, "TiledGroupNormRunner", "input must be [B, C, H, W], got \(input.shape)")
      let layout = try HaloTileLayout.grid(
        height: input.shape[2], width: input.shape[3], tile: tile, halo: halos.first ?? 0, alignment: alignment)
      let tileStore: TileStateStore?
      var directory: URL?
      switch store {
      case .memory: tileStore = MemoryTileStateStore()
      case .recompute: tileStore = nil
      case .file(let parent):
        directory = parent.appendingPathComponent("cogflow-tiles-\(UUID().uuidString)")
        tileStore = try FileTileStateStore(directory: directory!)
      }
      defer { if let directory { try? FileManager.default.removeItem(at: directory) } }
      return try TiledGroupNormRunner(layout: layout, stages: stages, store: tileStore, stageHalos: halos).run(input)
    }
  }
}
