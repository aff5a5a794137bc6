import XCTest

@testable import Diffusion
@testable import Tensor

/// The tiled GroupNorm runner on small conv + GroupNorm networks built from Tensor ops, standing in for
/// the VAE: tiled must equal untiled within float32 rounding.
final class TiledGroupNormTests: XCTestCase {
  struct Conv {
    let weight: Tensor, bias: Tensor, stride: Int, padding: Padding2D
    init(_ cin: Int, _ cout: Int, k: Int = 3, stride: Int = 1, padding: Padding2D = .uniform(1), seed: UInt64) {
      weight = pseudoRandom([cout, cin, k, k], seed: seed, scale: 1 / Float(cin * k * k).squareRoot())
      bias = pseudoRandom([cout], seed: seed + 1000, scale: 0.1)
      self.stride = stride
      self.padding = padding
    }
    func callAsFunction(_ x: Tensor) throws -> Tensor {
      try Ops.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }
  }

  struct Norm {
    let weight: Tensor, bias: Tensor, groups: Int
    init(_ c: Int, groups: Int, seed: UInt64) {
      weight = Ops.affine(pseudoRandom([c], seed: seed, scale: 0.3), scale: 1, shift: 1)
      bias = pseudoRandom([c], seed: seed + 1, scale: 0.2)
      self.groups = groups
    }
    func callAsFunction(_ x: Tensor, _ gn: GroupNormFunction) throws -> Tensor {
      try gn(x, groups, weight, bias, 1e-6)
    }
  }

  /// ResnetBlock as in the VAE: norm1 → swish → conv1 → norm2 → swish → conv2, plus the input.
  static func resBlock(_ c: Int, seed: UInt64) -> GroupNormStage {
    let (n1, c1, n2, c2) = (
      Norm(c, groups: 4, seed: seed), Conv(c, c, seed: seed + 10), Norm(c, groups: 4, seed: seed + 20),
      Conv(c, c, seed: seed + 30)
    )
    return { x, gn in
      let h = try c2(Ops.silu(n2(c1(Ops.silu(n1(x, gn))), gn)))
      return try Ops.add(x, h)
    }
  }

  /// Decoder-like: conv3×3 → ResnetBlock (2 GroupNorms) → upsample ×2 → conv → GroupNorm → SiLU → conv → 3 channels.
  /// Receptive radius in input pixels: 1 + 2 + ⌈2/2⌉ = 4.
  static let decoder: [GroupNormStage] = {
    let convIn = Conv(4, 8, seed: 1)
    let up = Conv(8, 8, seed: 2)
    let norm = Norm(8, groups: 4, seed: 3)
    let out = Conv(8, 3, seed: 4)
    return [
      { x, _ in try convIn(x) },
      resBlock(8, seed: 100),
      { x, gn in try out(Ops.silu(norm(up(Ops.upsampleNearest2x(x)), gn))) },
    ]
  }()

  /// Encoder-like, with the VAE downsample (pad (0,1,0,1), 3×3 stride 2) twice: 3 → 8 → 4 channels at ¼ size.
  static let encoder: [GroupNormStage] = {
    let convIn = Conv(3, 8, seed: 5)
    let down1 = Conv(8, 8, stride: 2, padding: .vaeDownsample, seed: 6)
    let norm = Norm(8, groups: 2, seed: 7)
    let down2 = Conv(8, 8, stride: 2, padding: .vaeDownsample, seed: 8)
    let out = Conv(8, 4, k: 1, padding: .zero, seed: 9)
    return [
      { x, _ in try convIn(x) },
      resBlock(8, seed: 200),
      { x, gn in try down1(x) },
      { x, gn in try out(Ops.silu(norm(down2(Ops.silu(norm(x, gn))), gn))) },
    ]
  }()

  static func untiled(_ stages: [GroupNormStage], _ x: Tensor) throws -> Tensor {
    try stages.reduce(x) { try $1($0, Ops.standardGroupNorm) }
  }

  func relError(_ a: Tensor, _ b: Tensor) -> Float { maxAbsDiff(a.data, b.data) / max(maxAbs(b.data), 1) }

  func testDecoderTiledEqualsUntiled() throws {
    let x = pseudoRandom([2, 4, 20, 28], seed: 91, scale: 2)
    let reference = try Self.untiled(Self.decoder, x)
    XCTAssertEqual(reference.shape, [2, 3, 40, 56])
    let layout = try HaloTileLayout.grid(height: 20, width: 28, tile: 8, halo: 4)
    XCTAssertEqual(layout.cores.count, 3 * 4)
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cogflow-tiles-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    var results: [Tensor] = []
    for store in [MemoryTileStateStore(), try FileTileStateStore(directory: dir), nil] as [TileStateStore?] {
      let tiled = try TiledGroupNormRunner(layout: layout, stages: Self.decoder, store: store).run(x)
      XCTAssertEqual(tiled.shape, reference.shape)
      let err = relError(tiled, reference)
      XCTAssertLessThanOrEqual(err, 2e-6, "store \(String(describing: store))")
      print("tiled decoder (\(store.map { "\(type(of: $0))" } ?? "recompute")): max relative error \(err)")
      results.append(tiled)
    }
    XCTAssertEqual(results[0], results[1], "memory and file stores give the same bits")
    XCTAssertEqual(results[0], results[2], "recomputing gives the same bits")
  }

  /// Per-stage halos: tiles shrink towards their cores as the remaining receptive radius shrinks, with the
  /// same result; a stage halo below the radius shows, and halos must be one per stage, non-increasing.
  func testShrinkingStageHalos() throws {
    let x = pseudoRandom([1, 4, 20, 28], seed: 93, scale: 2)
    let reference = try Self.untiled(Self.decoder, x)
    let layout = try HaloTileLayout.grid(height: 20, width: 28, tile: 8, halo: 4)
    XCTAssertEqual(layout.regions(halo: 4), layout.regions)
    // Radius from each stage on: 1 + 2 + ⌈2/2⌉ = 4, 2 + 1 = 3, ⌈2/2⌉ = 1.
    let shrinking = try TiledGroupNormRunner(layout: layout, stages: Self.decoder, stageHalos: [4, 3, 1]).run(x)
    XCTAssertLessThanOrEqual(relError(shrinking, reference), 2e-6)
    let recomputed = try TiledGroupNormRunner(layout: layout, stages: Self.decoder, store: nil, stageHalos: [4, 3, 1])
      .run(x)
    XCTAssertEqual(recomputed, shrinking)
    let short = try TiledGroupNormRunner(layout: layout, stages: Self.decoder, stageHalos: [4, 3, 0]).run(x)
    XCTAssertGreaterThan(relError(short, reference), 1e-3)
    XCTAssertThrowsError(try TiledGroupNormRunner(layout: layout, stages: Self.decoder, stageHalos: [3, 4, 1]).run(x))
    XCTAssertThrowsError(try TiledGroupNormRunner(layout: layout, stages: Self.decoder, stageHalos: [4, 1]).run(x))
  }

  /// The identities above can fail: a halo below the receptive radius, or per-tile GroupNorm statistics,
  /// give visible errors.
  func testTooSmallHaloOrLocalStatisticsDiffer() throws {
    let x = pseudoRandom([1, 4, 20, 28], seed: 92, scale: 2)
    let reference = try Self.untiled(Self.decoder, x)
    let thin = try TiledGroupNormRunner(
      layout: HaloTileLayout.grid(height: 20, width: 28, tile: 8, halo: 2), stages: Self.decoder
    ).run(x)
    XCTAssertGreaterThan(relError(thin, reference), 1e-3)
    // Local statistics: each tile run untiled on its region, core pasted.
    let layout = try HaloTileLayout.grid(height: 20, width: 28, tile: 8, halo: 4)
    var local = Tensor(zeros: reference.shape)
    for (core, region) in zip(layout.cores, layout.regions) {
      let out = try Self.untiled(Self.decoder, cropBCHW(x, region))
      let from = TileRect(
        y: 2 * (core.y - region.y), x: 2 * (core.x - region.x), height: 2 * core.height, width: 2 * core.width)
      try pasteBCHW(
        out, from: from, into: &local,
        at: TileRect(y: 2 * core.y, x: 2 * core.x, height: from.height, width: from.width))
    }
    XCTAssertGreaterThan(relError(local, reference), 1e-3)
  }

  func testEncoderWithDownsamplingTiledEqualsUntiled() throws {
    let x = pseudoRandom([1, 3, 32, 40], seed: 93)
    let reference = try Self.untiled(Self.encoder, x)
    XCTAssertEqual(reference.shape, [1, 4, 8, 10])
    var largest = 0
    let watched: [GroupNormStage] = Self.encoder.map { stage in
      { x, gn in
        largest = max(largest, x.shape[2] * x.shape[3])
        return try stage(x, gn)
      }
    }
    let layout = try HaloTileLayout.grid(height: 32, width: 40, tile: 12, halo: 12, alignment: 4)
    XCTAssertTrue(layout.cores.allSatisfy { $0.y % 4 == 0 && $0.x % 4 == 0 && $0.height % 4 == 0 })
    let tiled = try TiledGroupNormRunner(layout: layout, stages: watched).run(x)
    let err = relError(tiled, reference)
    print("tiled encoder: max relative error \(err)")
    XCTAssertLessThanOrEqual(err, 2e-6)
    let maxRegion = layout.regions.map { $0.height * $0.width }.max() ?? 0
    XCTAssertLessThanOrEqual(largest, maxRegion, "stages only see tile regions")
    XCTAssertLessThan(maxRegion, 32 * 40)
    let thin = try TiledGroupNormRunner(
      layout: HaloTileLayout.grid(height: 32, width: 40, tile: 12, halo: 4, alignment: 4), stages: Self.encoder
    ).run(x)
    XCTAssertGreaterThan(relError(thin, reference), 1e-3, "a halo below the receptive radius must show")
  }

  func testMisalignedTilesAreRejected() throws {
    let x = pseudoRandom([1, 3, 30, 30], seed: 94)
    // Boundaries at odd pixels cannot be mapped through a stride-2 downsample.
    let layout = try HaloTileLayout.grid(height: 30, width: 30, tile: 7, halo: 3, alignment: 1)
    XCTAssertThrowsError(try TiledGroupNormRunner(layout: layout, stages: Self.encoder).run(x))
    XCTAssertThrowsError(try HaloTileLayout.grid(height: 30, width: 30, tile: 8, halo: 2, alignment: 4))
    XCTAssertThrowsError(
      try TiledGroupNormRunner(layout: HaloTileLayout.grid(height: 8, width: 8, tile: 4, halo: 1), stages: Self.decoder)
        .run(Tensor(zeros: [1, 4, 8, 9])))
  }

  /// The pooled variance equals Σ p_i(σ_i² + μ_i²) − μ² of the issue.
  func testPooledStatisticsFormula() {
    let parts: [[Double]] = [[1, 2, 3.5], [10, -4], [0.25, 0.5, 0.75, 7]]
    var s = GroupStatistics(slots: 1)
    for p in parts {
      let m = p.reduce(0, +) / Double(p.count)
      s.merge(count: Double(p.count), mean: m, m2: p.map { ($0 - m) * ($0 - m) }.reduce(0, +), slot: 0)
    }
    let all = parts.flatMap { $0 }
    let mu = all.reduce(0, +) / Double(all.count)
    var viaIssue = 0.0
    for p in parts {
      let m = p.reduce(0, +) / Double(p.count)
      let v = p.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(p.count)
      viaIssue += Double(p.count) / Double(all.count) * (v + m * m)
    }
    viaIssue -= mu * mu
    XCTAssertEqual(s.mean[0], mu, accuracy: 1e-12)
    XCTAssertEqual(s.variance(0), viaIssue, accuracy: 1e-12)
    XCTAssertEqual(s.variance(0), all.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / Double(all.count), accuracy: 1e-12)
  }
}

/// A measurement, not a check: peak memory of a wider decoder-like network run untiled or tiled.
/// Run one mode per process, e.g.
/// `COGFLOW_DIFFUSION_MEASURE=tiled swift test -c release -Xswiftc -enable-testing --filter TiledMemoryMeasurement`.
final class TiledMemoryMeasurement: XCTestCase {
  func testPeakMemory() throws {
    guard let mode = ProcessInfo.processInfo.environment["COGFLOW_DIFFUSION_MEASURE"] else {
      throw XCTSkip("set COGFLOW_DIFFUSION_MEASURE=tiled|file|untiled to measure")
    }
    typealias T = TiledGroupNormTests
    let convIn = T.Conv(4, 64, seed: 1)
    let up1 = T.Conv(64, 64, seed: 2)
    let norm = T.Norm(64, groups: 32, seed: 3)
    let out = T.Conv(64, 3, seed: 4)
    let stages: [GroupNormStage] = [
      { x, _ in try convIn(x) },
      T.resBlock(64, seed: 100),
      { x, gn in try Ops.silu(norm(up1(Ops.upsampleNearest2x(x)), gn)) },
      { x, _ in try out(Ops.upsampleNearest2x(x)) },
    ]
    let x = pseudoRandom([1, 4, 128, 128], seed: 5)
    let start = Date()
    let y: Tensor
    switch mode {
    case "untiled":
      y = try T.untiled(stages, x)
    case "file":
      let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cogflow-measure-\(UUID().uuidString)")
      defer { try? FileManager.default.removeItem(at: dir) }
      y = try TiledGroupNormRunner(
        layout: HaloTileLayout.grid(height: 128, width: 128, tile: 32, halo: 6), stages: stages,
        store: FileTileStateStore(directory: dir)
      ).run(x)
    default:
      y = try TiledGroupNormRunner(
        layout: HaloTileLayout.grid(height: 128, width: 128, tile: 32, halo: 6), stages: stages, store: nil
      ).run(x)
    }
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let hwm = status.split(separator: "\n").first { $0.hasPrefix("VmHWM") } ?? "VmHWM unknown"
    print(
      "measure \(mode): output \(y.shape), \(String(format: "%.2f", Date().timeIntervalSince(start))) s, \(hwm), checksum \(y.data.reduce(0.0) { $0 + Double($1) })"
    )
  }
}
