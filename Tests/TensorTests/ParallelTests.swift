import XCTest

@testable import Tensor

/// The one thread setting drives OpenBLAS and the Dispatch fan-out; the work splitters cover every index once.
final class ParallelTests: XCTestCase {
  func testThreadSettingReachesOpenBLASAndIsRestored() {
    let saved = Parallel.threadCount
    defer { Parallel.threadCount = saved }
    Parallel.threadCount = 1
    XCTAssertEqual(Parallel.blasThreadCount, 1)
    Parallel.threadCount = 2
    XCTAssertEqual(Parallel.threadCount, 2)
    XCTAssertEqual(Parallel.blasThreadCount, 2)
    let inside = Parallel.withSingleThreadedBLAS { Parallel.blasThreadCount }
    XCTAssertEqual(inside, 1)
    XCTAssertEqual(Parallel.blasThreadCount, 2)
    Parallel.threadCount = 0
    XCTAssertEqual(Parallel.threadCount, 1, "thread count is clamped to at least 1")
  }

  func testSplittersCoverEveryIndexOnce() {
    let saved = Parallel.threadCount
    defer { Parallel.threadCount = saved }
    for threads in [1, 2, 3] {
      Parallel.threadCount = threads
      for count in [0, 1, 2, 5, 1000, 100_003] {
        let hits = UnsafeMutablePointer<Int32>.allocate(capacity: max(count, 1))
        defer { hits.deallocate() }
        hits.initialize(repeating: 0, count: max(count, 1))
        Parallel.forRange(count, minChunk: 7) { r in for i in r { hits[i] += 1 } }
        Parallel.forEach(count) { i in hits[i] += 1 }
        Parallel.forWorkers(count) { worker, r in
          XCTAssertLessThan(worker, threads)
          for i in r { hits[i] += 1 }
        }
        for i in 0..<count where hits[i] != 3 {
          XCTFail("threads \(threads) count \(count): index \(i) visited \(hits[i]) times, expected 3")
          break
        }
      }
    }
  }
}
