import Foundation
import XCTest

/// A prompt × seed toy batch: per prompt a text chain (shared by its seeds), per instance a PNG (toy.image).
/// `log` gets "<node> <key>" each time the counter or the image node really computes.
enum ToyBatch {
  static let text = """
    cogflow: 1
    name: toy-batch
    params:
      log: { type: string, default: "" }
      ms: { type: int, default: 0 }
      tag: { type: string, default: "" }
    matrix:
      prompt: ["a red fox", "a lighthouse at dawn"]
      seed: [1, 2, 3]
    nodes:
      txt: { type: toy.concat, in: { text: $prompt }, with: { suffix: $tag } }
      len: { type: toy.length, in: { text: txt.out } }
      enc: { type: toy.counter, in: { a: len.out }, with: { log: $log } }
      img: { type: toy.image, in: { a: enc.out }, with: { seed: $seed, log: $log, ms: $ms } }
    """

  /// Relative path (under the cache) → bytes of every object: what a run left in the cache.
  static func objects(_ cache: String) -> [String: Data] {
    var out: [String: Data] = [:]
    let base = URL(fileURLWithPath: cache + "/objects")
    let enumerator = FileManager.default.enumerator(at: base, includingPropertiesForKeys: nil)
    while let url = enumerator?.nextObject() as? URL {
      if let data = try? Data(contentsOf: url), !url.hasDirectoryPath {
        out[url.lastPathComponent] = data
      }
    }
    return out
  }

  /// Index keys in the cache.
  static func keys(_ cache: String) -> Set<String> {
    let base = URL(fileURLWithPath: cache + "/index")
    var out = Set<String>()
    let enumerator = FileManager.default.enumerator(at: base, includingPropertiesForKeys: nil)
    while let url = enumerator?.nextObject() as? URL {
      if url.lastPathComponent.count == 64 { out.insert(url.lastPathComponent) }
    }
    return out
  }
}

/// `cogflow run --shard`: shards on one cache equal a one-machine run; bad input stores nothing.
final class ShardCLITests: XCTestCase {
  override func setUp() {
    XCTAssertTrue(FileManager.default.isExecutableFile(atPath: CLI.binary), "build cogflow first: \(CLI.binary)")
  }

  /// Three shard processes at once on one cache: each computation happens exactly once (the per-prompt
  /// chain is shared by shards and waited for), and the cache ends up byte-identical to a one-machine run.
  func testConcurrentShardsEqualOneMachineRun() throws {
    let scratch = Scratch()
    let workflow = scratch.write("batch.yaml", ToyBatch.text)
    let log = scratch.path + "/shards.log"
    let env = CLI.environment(cache: scratch.cache)
    var processes: [Process] = []
    for index in 0..<3 {
      processes.append(
        try CLI.start(
          ["run", workflow, "--shard", "\(index)/3", "--quiet", "--set", "log=\(log)", "--set", "ms=200"], env: env,
          cwd: scratch.path, outputs: scratch.path + "/shard\(index)"))
    }
    for (index, process) in processes.enumerated() {
      process.waitUntilExit()
      XCTAssertEqual(process.terminationStatus, 0, scratch.read("shard\(index).err"))
    }
    let lines = scratch.lines("shards.log")
    XCTAssertEqual(lines.count, 2 + 6, lines.joined(separator: "\n"))
    XCTAssertEqual(Set(lines).count, lines.count, "a computation ran twice: \(lines)")

    let single = scratch.path + "/single"
    let one = try CLI.run(
      ["run", workflow, "--quiet", "--cache", single, "--set", "log=\(log)", "--set", "ms=200"],
      env: env, cwd: scratch.path)
    XCTAssertEqual(one.status, 0, one.stderr)
    XCTAssertEqual(ToyBatch.keys(scratch.cache), ToyBatch.keys(single))
    XCTAssertEqual(ToyBatch.keys(single).count, 12)
    let sharded = ToyBatch.objects(scratch.cache)
    XCTAssertEqual(sharded, ToyBatch.objects(single))
    XCTAssertEqual(sharded.values.filter { $0.starts(with: [0x89, 0x50, 0x4E, 0x47]) }.count, 6)
  }

  func testBadShardExits2BeforeTouchingTheCache() throws {
    let scratch = Scratch()
    let workflow = scratch.write("batch.yaml", ToyBatch.text)
    var env = CLI.environment(cache: scratch.cache)
    env["SLURM_ARRAY_TASK_ID"] = nil
    env["JOB_COMPLETION_INDEX"] = nil
    let cases: [([String], String)] = [
      (["--shard", "3/3"], "--shard 3/3: the index is out of range (shards are numbered 0...2)"),
      (["--shard", "1/0"], "the shard count must be 1"),
      (["--shard", "two/3"], "expected I/N (e.g. 0/4) or auto"),
      (["--shard", "auto"], "neither $SLURM_ARRAY_TASK_ID"),
    ]
    for (args, message) in cases {
      let out = try CLI.run(["run", workflow] + args, env: env, cwd: scratch.path)
      XCTAssertEqual(out.status, 2, "\(args): \(out.stderr)")
      XCTAssertTrue(out.stderr.contains(message), "\(args): \(out.stderr)")
      XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.cache), "\(args) created the cache")
    }
    // auto with the Slurm variables works.
    env["SLURM_ARRAY_TASK_ID"] = "2"
    env["COGFLOW_SHARD_COUNT"] = "3"
    let auto = try CLI.run(["run", workflow, "--shard", "auto", "--quiet"], env: env, cwd: scratch.path)
    XCTAssertEqual(auto.status, 0, auto.stderr)
    XCTAssertEqual(ToyBatch.objects(scratch.cache).values.filter { $0.starts(with: [0x89, 0x50]) }.count, 2)
  }

  func testMoreShardsThanInstancesGivesEmptyShards() throws {
    let scratch = Scratch()
    let workflow = scratch.write("batch.yaml", ToyBatch.text)
    let env = CLI.environment(cache: scratch.cache)
    let empty = try CLI.run(["run", workflow, "--shard", "7/8", "--quiet"], env: env, cwd: scratch.path)
    XCTAssertEqual(empty.status, 0, empty.stderr)
    XCTAssertTrue(
      empty.stderr.contains("shard 7/8 is empty: the workflow has 6 instances for 8 shards; nothing to do"),
      empty.stderr)
    XCTAssertTrue(ToyBatch.keys(scratch.cache).isEmpty)
    var images = 0
    for index in 0..<8 {
      let out = try CLI.run(["run", workflow, "--shard", "\(index)/8", "--quiet"], env: env, cwd: scratch.path)
      XCTAssertEqual(out.status, 0, out.stderr)
      images = ToyBatch.objects(scratch.cache).values.filter { $0.starts(with: [0x89, 0x50]) }.count
    }
    XCTAssertEqual(images, 6)
  }
}

/// Workflows/batch.yaml on the tiny model set (Tests/Fixtures/tiny-cogview3), split in two shards.
final class ShardTinyBatchCLITests: XCTestCase {
  func testTinyBatchShardsEqualOneMachineRunAndReport() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    let models = root.appendingPathComponent("Tests/Fixtures/tiny-cogview3").path
    let workflow = root.appendingPathComponent("Workflows/batch.yaml").path
    guard FileManager.default.fileExists(atPath: models + "/configs.json"),
      FileManager.default.fileExists(atPath: workflow)
    else { throw XCTSkip("the tiny model set or Workflows/batch.yaml is missing") }
    let scratch = Scratch()
    var env = CLI.environment(cache: scratch.cache)
    env["COGFLOW_TOY_NODES"] = nil
    // The same `--set` words in both runs (the PNG's provenance records them), each run in its own folder.
    let sets = ["size=64", "steps=2", "lines=[0, 2]", "seeds=[1, 2]", "output=img"].flatMap { ["--set", $0] }
    let shardDir = scratch.path + "/shards"
    let oneDir = scratch.path + "/one"
    for dir in [shardDir, oneDir] {
      try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    for index in 0..<2 {
      let out = try CLI.run(
        ["run", workflow, "--models", models, "--shard", "\(index)/2", "--quiet"] + sets, env: env, cwd: shardDir)
      XCTAssertEqual(out.status, 0, out.stderr)
    }
    let single = scratch.path + "/single"
    let one = try CLI.run(
      ["run", workflow, "--models", models, "--cache", single, "--quiet"] + sets, env: env, cwd: oneDir)
    XCTAssertEqual(one.status, 0, one.stderr)
    // The cached tensors (conditionings, latents, images) are the same bytes; so are the saved PNGs.
    XCTAssertEqual(ToyBatch.objects(scratch.cache), ToyBatch.objects(single))
    for name in ["0-1", "0-2", "2-1", "2-2"] {
      let a = try Data(contentsOf: URL(fileURLWithPath: "\(shardDir)/img-\(name).png"))
      let b = try Data(contentsOf: URL(fileURLWithPath: "\(oneDir)/img-\(name).png"))
      XCTAssertEqual(a, b, name)
    }
    let report = try CLI.run(
      ["report", workflow, "--models", models, "--out", "rep"] + sets, env: env, cwd: shardDir)
    XCTAssertEqual(report.status, 0, report.stderr)
    XCTAssertTrue(report.stdout.contains(": 4 images,"), report.stdout)
    XCTAssertTrue(report.stdout.contains(" 0 failed, 0 missing)"), report.stdout)
  }
}
