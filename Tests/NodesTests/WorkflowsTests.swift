import Foundation
import ModelIO
import Tensor
import XCTest

@testable import Nodes
@testable import Workflow

/// End to end on the tiny model set (Tests/Fixtures/tiny-cogview3): the ready workflows validate and run at
/// reduced sizes, and the cache reruns exactly what changed.
final class WorkflowsTests: XCTestCase {
  /// relay-1024 at 64² → 128², few steps: keeps the suite fast on two cores.
  static let small = ["size=64", "base_steps=3", "relay_steps=2", "relay_grid=4"]

  func runner(
    _ file: String, _ overrides: [String] = [], cache: DiskCache?, output: URL? = nil, extra: [String] = []
  ) throws -> WorkflowRunner {
    var sets = overrides
    if let output { sets.append("output=\(output.path)/{name}-{seed}.png") }
    return try WorkflowRunner(
      path: Paths.workflow(file), overrides: sets + extra, modelsDirectory: try Paths.tinyModels(), cache: cache)
  }

  func testEveryWorkflowValidates() throws {
    let models = try Paths.tinyModels()
    let files = try FileManager.default.contentsOfDirectory(atPath: Paths.workflows.path).filter {
      $0.hasSuffix(".yaml")
    }
    let core: Set = [
      "base-512.yaml", "batch.yaml", "distilled-4+1.yaml", "distilled-8+2.yaml", "relay-1024.yaml", "relay-2048.yaml",
    ]
    XCTAssertTrue(core.isSubset(of: files), "missing: \(core.subtracting(files).sorted())")
    for file in files {
      XCTAssertNoThrow(try WorkflowRunner(path: Paths.workflow(file), modelsDirectory: models), file)
    }
  }

  func testRelay1024RunsRerunsNothingAndSetCfgRerunsSamplersOnly() throws {
    let dir = try Paths.temporaryFolder(self)
    let cache = try DiskCache(root: dir.appendingPathComponent("cache"))
    let out = dir.appendingPathComponent("out")

    let first = try runner("relay-1024.yaml", Self.small, cache: cache, output: out).run()
    XCTAssertTrue(first.succeeded, "\(first.errors)")
    let png = try PNGImage.read(path: out.appendingPathComponent("relay-1024-0.png").path)
    XCTAssertEqual([png.width, png.height, png.channels], [128, 128, 3])
    let firstBytes = try Data(contentsOf: out.appendingPathComponent("relay-1024-0.png"))

    // A rerun computes nothing: only the always-run save-image runs.
    let again = try runner("relay-1024.yaml", Self.small, cache: cache, output: out).run()
    XCTAssertEqual(again.nodes(.ran), ["save"])
    XCTAssertEqual(again.count(.cached), 7)

    // --set cfg=5: the samplers and everything after them, not text-encode.
    let cfg = try runner("relay-1024.yaml", Self.small + ["cfg=5"], cache: cache, output: out).run()
    XCTAssertEqual(cfg.nodes(.ran), ["base", "base_image", "image", "low", "relay", "save", "up"])
    XCTAssertEqual(cfg.nodes(.cached), ["text"])

    // Only the output path changes (back to the first run's parameters): only save-image runs, writing the
    // first run's image to the new place.
    let other = dir.appendingPathComponent("elsewhere")
    let moved = try runner("relay-1024.yaml", Self.small, cache: cache, output: other).run()
    XCTAssertEqual(moved.nodes(.ran), ["save"])
    XCTAssertEqual(try Data(contentsOf: other.appendingPathComponent("relay-1024-0.png")), firstBytes)
  }

  func testDistilledWorkflowsRun() throws {
    let dir = try Paths.temporaryFolder(self)
    let cache = try DiskCache(root: dir.appendingPathComponent("cache"))
    for file in ["distilled-4+1.yaml", "distilled-8+2.yaml"] {
      let result = try runner(file, ["size=64"], cache: cache, output: dir).run()
      XCTAssertTrue(result.succeeded, "\(file): \(result.errors)")
    }
    XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("distilled-4+1-0.png").path))
    XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("distilled-8+2-0.png").path))
  }

  func testRelay2048RunsTiled() throws {
    let dir = try Paths.temporaryFolder(self)
    let cache = try DiskCache(root: dir.appendingPathComponent("cache"))
    // 64² → 128² → 256²; the second relay stage in 128-px tiles overlapping by 32 (a 3×3 grid on the 32² latent).
    let run = try runner(
      "relay-2048.yaml", Self.small + ["tile=128", "overlap=32", "final_output=\(dir.path)/final-{seed}.png"],
      cache: cache, output: dir
    ).run()
    XCTAssertTrue(run.succeeded, "\(run.errors)")
    let png = try PNGImage.read(path: dir.appendingPathComponent("final-0.png").path)
    XCTAssertEqual([png.width, png.height], [256, 256])
  }

  func testOneTileCoveringTheCanvasEqualsUntiled() throws {
    let dir = try Paths.temporaryFolder(self)
    let cache = try DiskCache(root: dir.appendingPathComponent("cache"))
    let file = dir.appendingPathComponent("one-tile.yaml")
    try """
    cogflow: 1
    name: one-tile
    include: \(Paths.workflow("relay-1024.yaml"))
    nodes:
      tiles: { type: tile, with: { tile: 1024, overlap: 0 } }
      relay_tiled: { type: relay-sample, in: { cond: text.cond, low: low.latent, tiles: tiles.tiles }, with: { model: relay, steps: $relay_steps, grid: $relay_grid, cfg: $cfg, seed: $seed } }
      image_tiled: { type: decode, in: { latent: relay.latent, tiles: tiles.tiles }, with: { model: vae, quantize: none } }
      image_float: { type: decode, in: { latent: relay.latent }, with: { model: vae, quantize: none } }
    """.write(to: file, atomically: true, encoding: .utf8)
    let runner = try WorkflowRunner(
      path: file.path, overrides: Self.small + ["output=\(dir.path)/x.png"], modelsDirectory: try Paths.tinyModels(),
      cache: cache)
    let result = runner.run()
    XCTAssertTrue(result.succeeded, "\(result.errors)")
    XCTAssertEqual(
      try runner.output("relay_tiled", port: "latent", of: result).bytes,
      try runner.output("relay", port: "latent", of: result).bytes,
      "one tile must equal the untiled sampler bit for bit")
    let tiled = try Artifacts.decodeImage(try runner.output("image_tiled", port: "image", of: result))
    let whole = try Artifacts.decodeImage(try runner.output("image_float", port: "image", of: result))
    let worst = zip(tiled.data, whole.data).map { abs($0 - $1) }.max() ?? 1
    XCTAssertLessThan(worst, 1e-4, "tiled decode equals untiled up to float rounding")
  }

  func testCancelledRunResumesFromCacheWithNothingPartial() throws {
    let dir = try Paths.temporaryFolder(self)
    let cache = try DiskCache(root: dir.appendingPathComponent("cache"))
    var options = EngineOptions()
    let token = options.cancellation
    let cancelled = try runner("relay-1024.yaml", Self.small, cache: cache, output: dir).run(options: options) {
      event in
      if event.kind == .progress && event.node == "relay" { token.cancel() }
    }
    XCTAssertTrue(cancelled.cancelled)
    XCTAssertEqual(cancelled.outcomes["relay"], .cancelled)
    if let key = cancelled.keys["relay"] { XCTAssertNil(cache.lookup(key), "nothing partial is stored") }
    options = EngineOptions()
    let resumed = try runner("relay-1024.yaml", Self.small, cache: cache, output: dir).run(options: options)
    XCTAssertTrue(resumed.succeeded, "\(resumed.errors)")
    XCTAssertEqual(resumed.nodes(.cached), ["base", "base_image", "low", "text", "up"])
    XCTAssertEqual(resumed.nodes(.ran), ["image", "relay", "save"])
  }

  func testModelsLoadOnceAndT5IsReleasedBeforeTheFirstUNetStep() throws {
    let dir = try Paths.temporaryFolder(self)
    let runner = try runner("relay-1024.yaml", Self.small, cache: nil, output: dir)
    guard let t5 = runner.workflow.node("text")?.params.models["model"]?.path,
      let vae = runner.workflow.node("low")?.params.models["model"]?.path
    else { return XCTFail("models not resolved") }
    let log = EventLog()
    let pool = runner.pool
    let result = runner.run { event in
      if event.kind == .progress && event.node == "base" && event.step == 1 {
        var note = EngineEvent(.nodeLog, node: "probe")
        note.message = pool.isLoaded(t5) ? "t5 loaded" : "t5 released"
        log.append(note)
      }
    }
    XCTAssertTrue(result.succeeded, "\(result.errors)")
    XCTAssertEqual(log.all.compactMap(\.message), ["t5 released"])
    XCTAssertEqual(pool.loadCount(t5), 1)
    XCTAssertEqual(pool.loadCount(vae), 1, "decode, encode-latent and decode share one VAE")
    XCTAssertFalse(pool.isLoaded(vae), "released after its last user")
  }

  func testBatchRunsEachPromptOncePerSeed() throws {
    let dir = try Paths.temporaryFolder(self)
    let cache = try DiskCache(root: dir.appendingPathComponent("cache"))
    let runner = try runner(
      "batch.yaml", ["size=64", "steps=2", "lines=[0, 2]", "seeds=[1, 2]", "output=\(dir.path)/b"], cache: cache)
    let log = EventLog()
    let result = runner.run { log.append($0) }
    XCTAssertTrue(result.succeeded, "\(result.errors)")
    let started = log.all.filter { $0.kind == .nodeStart }.compactMap(\.type)
    XCTAssertEqual(started.filter { $0 == "text-encode" }.count, 2, "one T5 pass per prompt")
    XCTAssertEqual(started.filter { $0 == "base-sample" }.count, 4)
    for name in ["b-0-1.png", "b-0-2.png", "b-2-1.png", "b-2-2.png"] {
      XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path), name)
    }
  }
}
