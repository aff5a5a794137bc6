import Foundation
import XCTest

@testable import Workflow

/// `--shard I/N`: parsing, and the partition of a batch's instances (Sources/Workflow/Shard.swift).
final class ShardTests: XCTestCase {
  /// prompt × seed with a per-prompt upstream chain (shared by that prompt's seeds) and a per-instance image.
  static func batch(
    prompts: String = "[\"a red fox\", \"a lighthouse\", \"rain\"]", seeds: String = "[1, 2, 3, 4]",
    extraParams: String = ""
  ) -> String {
    """
    cogflow: 1
    name: shard-batch
    params:
      tag: { type: string, default: "" }\(extraParams)
    matrix:
      prompt: \(prompts)
      seed: \(seeds)
    nodes:
      txt: { type: toy.concat, in: { text: $prompt }, with: { suffix: $tag } }
      len: { type: toy.length, in: { text: txt.out } }
      img: { type: toy.image, in: { a: len.out }, with: { seed: $seed, size: 4 } }
    """
  }

  func testParse() throws {
    XCTAssertEqual(try ShardSpec.parse("2/5"), try ShardSpec(index: 2, count: 5))
    for bad in ["5/5", "-1/3", "1/0", "x/3", "1/", "3", "1/2/3", ""] {
      XCTAssertThrowsError(try ShardSpec.parse(bad, environment: [:]), bad) { error in
        XCTAssertTrue("\(error)".contains("--shard"), "\(error)")
      }
    }
    XCTAssertThrowsError(try ShardSpec.parse("7/3")) { error in
      XCTAssertEqual("\(error)", "--shard 7/3: the index is out of range (shards are numbered 0...2)")
    }
    // auto: Slurm array, Kubernetes Indexed Job; the explicit count wins over the array's task count.
    XCTAssertEqual(
      try ShardSpec.parse("auto", environment: ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3"]),
      try ShardSpec(index: 1, count: 3))
    XCTAssertEqual(
      try ShardSpec.parse(
        "auto", environment: ["SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "1", "COGFLOW_SHARD_COUNT": "6"]),
      try ShardSpec(index: 4, count: 6))
    XCTAssertEqual(
      try ShardSpec.parse("auto", environment: ["JOB_COMPLETION_INDEX": "0", "COGFLOW_SHARD_COUNT": "2"]),
      try ShardSpec(index: 0, count: 2))
    XCTAssertThrowsError(try ShardSpec.parse("auto", environment: [:])) { error in
      XCTAssertTrue("\(error)".contains("SLURM_ARRAY_TASK_ID"), "\(error)")
    }
    XCTAssertThrowsError(try ShardSpec.parse("auto", environment: ["JOB_COMPLETION_INDEX": "0"])) { error in
      XCTAssertTrue("\(error)".contains("COGFLOW_SHARD_COUNT"), "\(error)")
    }
    XCTAssertThrowsError(
      try ShardSpec.parse("auto", environment: ["JOB_COMPLETION_INDEX": "3", "COGFLOW_SHARD_COUNT": "3"]))
  }

  /// Every instance in exactly one shard, each shard with the ancestors it needs, sizes within one.
  func testPartitionCoversEveryInstanceOnceWithAncestors() throws {
    let dir = TempDir()
    let workflow = try resolve(dir.write("batch.yaml", Self.batch()))
    XCTAssertEqual(workflow.nodes.count, 3 + 3 + 12)
    for count in [1, 2, 3, 5, 12, 20] {
      var seen: [String: Int] = [:]
      var sizes: [Int] = []
      for index in 0..<count {
        let (part, units, total) = Sharding.select(workflow, shard: try ShardSpec(index: index, count: count))
        XCTAssertEqual(total, 12)
        sizes.append(units)
        let images = part.nodes.filter { $0.baseID == "img" }
        XCTAssertEqual(images.count, units)
        for node in images { seen[node.id, default: 0] += 1 }
        // Closed under inputs: the part runs on its own.
        for node in part.nodes {
          for source in node.inputs.values {
            if case .edge(let up, _) = source { XCTAssertNotNil(part.node(up), "\(node.id) needs \(up)") }
          }
        }
        // Only the prompts the part needs.
        let prompts = Set(images.compactMap { $0.bindings.first { $0.name == "prompt" }?.value })
        XCTAssertEqual(part.nodes.filter { $0.baseID == "txt" }.count, prompts.count)
      }
      XCTAssertEqual(seen.count, 12, "count \(count)")
      XCTAssertTrue(seen.values.allSatisfy { $0 == 1 }, "count \(count): \(seen)")
      XCTAssertLessThanOrEqual(sizes.max()! - sizes.min()!, 1, "count \(count): \(sizes)")
      if count > 12 { XCTAssertEqual(sizes.filter { $0 == 0 }.count, count - 12) }
    }
  }

  /// An instance's shard depends on its bindings only: reordering matrix values or adding an unrelated
  /// parameter moves nothing.
  func testPartitionIsStableUnderReordering() throws {
    let dir = TempDir()
    func assignment(_ text: String) throws -> [String: Int] {
      let workflow = try resolve(dir.write("w-\(UUID().uuidString).yaml", text))
      var out: [String: Int] = [:]
      for index in 0..<4 {
        let (part, _, _) = Sharding.select(workflow, shard: try ShardSpec(index: index, count: 4))
        for node in part.nodes where node.baseID == "img" {
          let key = node.bindings.map { "\($0.name)=\($0.value.text)" }.sorted().joined(separator: ",")
          out[key] = index
        }
      }
      return out
    }
    let base = try assignment(Self.batch())
    XCTAssertEqual(base.count, 12)
    XCTAssertEqual(Set(base.values).count, 4)
    let reordered = try assignment(
      Self.batch(prompts: "[\"rain\", \"a red fox\", \"a lighthouse\"]", seeds: "[4, 2, 3, 1]"))
    XCTAssertEqual(reordered, base)
    let unrelated = try assignment(Self.batch(extraParams: "\n  steps: { type: int, default: 50 }"))
    XCTAssertEqual(unrelated, base)
  }

  func testWorkflowWithoutMatrixIsOneUnit() throws {
    let dir = TempDir()
    let path = dir.write(
      "plain.yaml",
      """
      cogflow: 1
      nodes:
        a: { type: toy.add, with: { value: 1 } }
        b: { type: toy.mul, in: { a: a.out }, with: { factor: 3 } }
      """)
    let workflow = try resolve(path)
    let units = Sharding.units(of: workflow, count: 2)
    XCTAssertEqual(units.count, 1)
    let parts = try (0..<2).map { Sharding.select(workflow, shard: try ShardSpec(index: $0, count: 2)).workflow }
    XCTAssertEqual(parts.map(\.nodes.count).sorted(), [0, 2])
  }

  /// Shards run one after another on one cache compute every node exactly once, and a run record is left.
  func testShardsShareTheCacheAndRecordRuns() throws {
    let dir = TempDir()
    let log = dir.path("runs.log")
    let text = Self.batch().replacingOccurrences(
      of: "with: { seed: $seed, size: 4 }", with: "with: { seed: $seed, size: 4, log: \"\(log)\" }")
    let workflow = try resolve(dir.write("batch.yaml", text))
    let cache = try DiskCache(root: dir.url.appendingPathComponent("cache"))
    for index in 0..<3 {
      let spec = try ShardSpec(index: index, count: 3)
      let part = Sharding.select(workflow, shard: spec).workflow
      let started = Date()
      let result = runEngine(part, cache: cache)
      XCTAssertTrue(result.succeeded, "\(result.errors)")
      try RunRecord(workflow: part, shard: spec, result: result, started: started, environment: [:]).write(to: cache)
    }
    let lines = dir.lines("runs.log")
    XCTAssertEqual(lines.count, 12)
    XCTAssertEqual(Set(lines).count, 12)
    let records = RunRecord.all(in: cache, workflowID: RunRecord.workflowID(workflow))
    XCTAssertEqual(records.map(\.shard).sorted(), ["0/3", "1/3", "2/3"])
    XCTAssertEqual(records.flatMap { $0.nodes.values }.filter { $0.outcome == "ran" }.count, 18)
    // The whole batch afterwards: everything cached.
    let whole = runEngine(workflow, cache: cache)
    XCTAssertEqual(whole.count(.cached), 18)
    // Reruns keep only the newest records per shard; other shards' records stay.
    for attempt in 0..<7 {
      let started = Date(timeIntervalSince1970: 2_000_000_000 + Double(attempt))
      try RunRecord(workflow: workflow, shard: nil, result: whole, started: started, environment: [:]).write(to: cache)
    }
    let kept = RunRecord.all(in: cache, workflowID: RunRecord.workflowID(workflow))
    XCTAssertEqual(kept.filter { $0.shard == "all" }.map(\.started), (2...6).map { 2_000_000_000 + Double($0) })
    XCTAssertEqual(kept.filter { $0.shard != "all" }.count, 3)
  }

  /// The toy PNG is a valid PNG: the signature, an IHDR with the size, CRCs that check out.
  func testToyImageIsAValidPNG() throws {
    let png = StoredPNG.rgb(width: 3, height: 2, pixels: [UInt8](repeating: 7, count: 18))
    let bytes = [UInt8](png)
    XCTAssertEqual(Array(bytes[0..<8]), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    XCTAssertEqual(String(decoding: bytes[12..<16], as: UTF8.self), "IHDR")
    XCTAssertEqual(Array(bytes[16..<24]), [0, 0, 0, 3, 0, 0, 0, 2])
    // CRC-32 of "IEND" is the well-known AE 42 60 82.
    XCTAssertEqual(Array(bytes.suffix(4)), [0xAE, 0x42, 0x60, 0x82])
    // Adler-32 of "Wikipedia" (RFC 1950 example in common use): 0x11E60398.
    XCTAssertEqual(StoredPNG.adler32(Array("Wikipedia".utf8)), 0x11E6_0398)
  }
}
