import Foundation
import XCTest

@testable import Workflow

final class CacheTests: XCTestCase {
  func entry(_ key: String, _ records: [String: OutputRecord], seconds: Double) -> CacheEntry {
    CacheEntry(
      key: key, nodeType: "t", version: 1, outputs: records, seconds: seconds, created: 0, params: [:], inputs: [:],
      files: [:])
  }

  func put(_ cache: DiskCache, _ key: String, bytes: Int, seconds: Double) throws -> OutputRecord {
    let seed = Array(SHA256.hash(key).utf8)
    let data = Data((0..<bytes).map { seed[$0 % seed.count] &+ UInt8(truncatingIfNeeded: $0 / seed.count) })
    let record = OutputRecord(digest: SHA256.hash(data), type: "bytes", size: data.count)
    try cache.putObject(data, digest: record.digest)
    try cache.store(entry(key, ["out": record], seconds: seconds))
    return record
  }

  func testStoreLookupAndChecksums() throws {
    let dir = TempDir()
    let cache = try DiskCache(root: dir.url)
    let record = try put(cache, "k1", bytes: 1000, seconds: 1)
    XCTAssertEqual(cache.lookup("k1")?.outputs["out"], record)
    XCTAssertEqual(try cache.getObject(record).count, 1000)

    // Flip one byte of the object: reading it throws and removes it; the entry then no longer hits.
    let path = cache.objectPath(record.digest)
    var data = try Data(contentsOf: URL(fileURLWithPath: path))
    data[10] ^= 0xff
    try data.write(to: URL(fileURLWithPath: path))
    XCTAssertThrowsError(try cache.getObject(record)) { XCTAssertTrue($0 is CacheCorruption) }
    XCTAssertNil(cache.lookup("k1"))

    // A damaged index entry is dropped and reported.
    _ = try put(cache, "k2", bytes: 10, seconds: 1)
    let indexPath = cache.indexPath("k2")
    var text = try String(contentsOfFile: indexPath, encoding: .utf8)
    text = text.replacingOccurrences(of: "\"seconds\":1", with: "\"seconds\":2")
    try text.write(toFile: indexPath, atomically: false, encoding: .utf8)
    let reported = ReportBox()
    cache.onCorruption = { reported.add($0) }
    XCTAssertNil(cache.lookup("k2"))
    XCTAssertEqual(reported.items.count, 1)
    XCTAssertFalse(FileManager.default.fileExists(atPath: indexPath))
  }

  func testVerifyFindsAndRemovesCorruption() throws {
    let dir = TempDir()
    let cache = try DiskCache(root: dir.url)
    let good = try put(cache, "good", bytes: 100, seconds: 1)
    let bad = try put(cache, "bad", bytes: 100, seconds: 2)
    try Data(repeating: 0, count: 100).write(to: URL(fileURLWithPath: cache.objectPath(bad.digest)))
    _ = FileManager.default.createFile(
      atPath: dir.url.appendingPathComponent("tmp/123-stale").path, contents: Data([1]))
    let report = cache.verify()
    XCTAssertEqual(report.entriesChecked, 2)
    XCTAssertEqual(report.problems.count, 2, "\(report.problems)")
    XCTAssertNotNil(cache.lookup("good"))
    XCTAssertNil(cache.lookup("bad"))
    XCTAssertEqual(try cache.getObject(good).count, 100)
    XCTAssertEqual(cache.stats().tmpFiles, 0)
    XCTAssertTrue(cache.verify().problems.isEmpty)
  }

  func testGarbageCollectionEvictsCheapLargeOldFirst() throws {
    let dir = TempDir()
    let cache = try DiskCache(root: dir.url)
    _ = try put(cache, "cheap-big", bytes: 4000, seconds: 0.1)
    _ = try put(cache, "costly-big", bytes: 4000, seconds: 100)
    _ = try put(cache, "cheap-small", bytes: 500, seconds: 0.1)
    _ = try put(cache, "old-costly", bytes: 4000, seconds: 100)
    // Age one entry by a year.
    let old = timeval(tv_sec: Int(Date().timeIntervalSince1970) - 365 * 86_400, tv_usec: 0)
    let times = [old, old]
    _ = times.withUnsafeBufferPointer { utimes(cache.indexPath("old-costly"), $0.baseAddress) }
    // An unreferenced object goes regardless of budget.
    try cache.putObject(Data([1, 2, 3]), digest: SHA256.hash(Data([1, 2, 3])))
    // Scores (seconds per byte, discounted by age): cheap-big < old-costly < cheap-small < costly-big.
    // The budget counts index entries too (issue 10): the two kept entries' index files come on top.
    let keptIndex = ["costly-big", "cheap-small"].map { cache.fileSize(cache.indexPath($0)) }.reduce(0, +)
    let report = cache.collectGarbage(maxBytes: 4600 + keptIndex)
    XCTAssertEqual(report.objectsRemoved, 3, "the orphan, cheap-big and old-costly")
    XCTAssertNil(cache.lookup("cheap-big"))
    XCTAssertNil(cache.lookup("old-costly"))
    XCTAssertNotNil(cache.lookup("costly-big"))
    XCTAssertNotNil(cache.lookup("cheap-small"))
    XCTAssertEqual(report.bytesKept, 4500 + keptIndex)
    XCTAssertLessThan(
      DiskCache.retentionScore(seconds: 1, bytes: 100, ageSeconds: 86_400 * 30),
      DiskCache.retentionScore(seconds: 1, bytes: 100, ageSeconds: 0))
  }

  func testFileDigestIsRememberedByStamp() throws {
    let dir = TempDir()
    let file = dir.write("model.bin", String(repeating: "m", count: 5000))
    let cache = try DiskCache(root: dir.url.appendingPathComponent("c"))
    let d1 = try cache.fileDigest(file)
    XCTAssertEqual(d1, SHA256.hash(Data(String(repeating: "m", count: 5000).utf8)))
    XCTAssertEqual(try cache.fileDigest(file), d1)
    XCTAssertEqual(cache.filesHashed, 1)
    let other = try DiskCache(root: dir.url.appendingPathComponent("c"))
    XCTAssertEqual(try other.fileDigest(file), d1)
    XCTAssertEqual(other.filesHashed, 0, "remembered on disk by path, size, mtime and inode")
    // Replace with a new file (new inode) of the same size: hashed again.
    let tmp = dir.write("model.new", String(repeating: "n", count: 5000))
    rename(tmp, file)
    XCTAssertNotEqual(try other.fileDigest(file), d1)
    XCTAssertEqual(other.filesHashed, 1)
  }

  func testDefaultLocation() {
    XCTAssertEqual(DiskCache.defaultLocation(explicit: "/x", environment: ["COGFLOW_CACHE": "/y"]).path, "/x")
    XCTAssertEqual(DiskCache.defaultLocation(environment: ["COGFLOW_CACHE": "/y"]).path, "/y")
    XCTAssertEqual(DiskCache.defaultLocation(environment: ["XDG_CACHE_HOME": "/z"]).path, "/z/cogflow")
    XCTAssertTrue(DiskCache.defaultLocation(environment: [:]).path.hasSuffix("cogflow"))
  }

  func testKeyLockExcludesSecondHolder() throws {
    let dir = TempDir()
    let cache = try DiskCache(root: dir.url)
    let token = CancellationToken()
    var waited = false
    let first = try cache.lockKey("k", cancellation: token, waited: &waited)
    XCTAssertFalse(waited)
    let released = ReportBox()
    DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) {
      released.add("released")
      first.release()
    }
    var waited2 = false
    let second = try cache.lockKey("k", cancellation: token, waited: &waited2)
    XCTAssertTrue(waited2)
    XCTAssertEqual(released.items, ["released"], "the second lock was granted only after the first was released")
    second.release()
    // A cancelled waiter gives up.
    let third = try cache.lockKey("k", cancellation: token, waited: &waited)
    token.cancel()
    XCTAssertThrowsError(try cache.lockKey("k", cancellation: token, waited: &waited2))
    third.release()
  }
}

final class ReportBox: @unchecked Sendable {
  private let lock = NSLock()
  private var list: [String] = []
  func add(_ s: String) {
    lock.lock()
    list.append(s)
    lock.unlock()
  }
  var items: [String] {
    lock.lock()
    defer { lock.unlock() }
    return list
  }
}
