import Foundation
import XCTest

@testable import Nodes
@testable import Workflow

/// Paths and helpers shared by the node tests.
enum Paths {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
  static let workflows = root.appendingPathComponent("Workflows")
  static let tiny = root.appendingPathComponent("Tests/Fixtures/tiny-cogview3")

  static func workflow(_ name: String) -> String { workflows.appendingPathComponent(name).path }

  /// The tiny model set (Tests/Fixtures/tiny-cogview3), or a skip saying why the test cannot run.
  static func tinyModels() throws -> String {
    guard FileManager.default.fileExists(atPath: tiny.appendingPathComponent("cogview3-base/latest").path) else {
      throw XCTSkip(
        "the tiny model set Tests/Fixtures/tiny-cogview3 is not present (made by Tests/tools/make_tiny_cogview3.py)")
    }
    return tiny.path
  }

  /// A fresh temporary folder, removed at the end of the test.
  static func temporaryFolder(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("cogflow-nodes-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
  }
}

/// Collects engine events from any thread.
final class EventLog: @unchecked Sendable {
  private let lock = NSLock()
  private var events: [EngineEvent] = []

  func append(_ event: EngineEvent) {
    lock.lock()
    events.append(event)
    lock.unlock()
  }

  var all: [EngineEvent] {
    lock.lock()
    defer { lock.unlock() }
    return events
  }
}

extension RunResult {
  /// Node ids with outcome `outcome`, sorted.
  func nodes(_ outcome: NodeOutcome) -> [String] { outcomes.filter { $0.value == outcome }.map(\.key).sorted() }
}
