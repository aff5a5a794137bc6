import Foundation
import XCTest

@testable import Workflow

/// A fresh folder per test, removed afterwards.
final class TempDir {
  let url: URL
  init() {
    url = FileManager.default.temporaryDirectory.appendingPathComponent("cogflow-test-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  }
  deinit { try? FileManager.default.removeItem(at: url) }

  func path(_ name: String) -> String { url.appendingPathComponent(name).path }

  @discardableResult
  func write(_ name: String, _ text: String) -> String {
    let p = path(name)
    try? FileManager.default.createDirectory(
      atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try? text.write(toFile: p, atomically: true, encoding: .utf8)
    return p
  }

  func lines(_ name: String) -> [String] {
    ((try? String(contentsOfFile: path(name), encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
  }
}

let toyRegistry = NodeRegistry(ToyNodes.all)

/// Resolves a workflow file or fails the test with its diagnostics.
func resolve(
  _ path: String, _ options: ResolveOptions = ResolveOptions(), file: StaticString = #filePath, line: UInt = #line
)
  throws -> ResolvedWorkflow
{
  do {
    return try WorkflowResolver.load(path: path, registry: toyRegistry, options: options)
  } catch {
    XCTFail("did not validate: \(error)", file: file, line: line)
    throw error
  }
}

/// The diagnostics a workflow produces (empty when it validates).
func diagnostics(_ path: String, _ options: ResolveOptions = ResolveOptions()) -> [Diagnostic] {
  do {
    _ = try WorkflowResolver.load(path: path, registry: toyRegistry, options: options)
    return []
  } catch WorkflowError.invalid(let list) {
    return list
  } catch {
    return [Diagnostic("\(error)", at: nil)]
  }
}

/// Collects events from a run (thread-safe).
final class EventLog: @unchecked Sendable {
  private let lock = NSLock()
  private var list: [EngineEvent] = []
  func add(_ event: EngineEvent) {
    lock.lock()
    list.append(event)
    lock.unlock()
  }
  var events: [EngineEvent] {
    lock.lock()
    defer { lock.unlock() }
    return list
  }
  func nodes(_ kind: EngineEvent.Kind) -> [String] { events.filter { $0.kind == kind }.compactMap(\.node).sorted() }
}

func runEngine(
  _ workflow: ResolvedWorkflow, cache: DiskCache?, options: EngineOptions = EngineOptions(), log: EventLog = EventLog()
) -> RunResult {
  Engine(workflow: workflow, registry: toyRegistry, cache: cache, options: options) { log.add($0) }.run()
}

/// Reads an int output of a node from the cache (via its key).
func intOutput(_ result: RunResult, _ node: String, cache: DiskCache, port: String = "out") throws -> Int? {
  guard let key = result.keys[node], let entry = cache.lookup(key), let record = entry.outputs[port] else { return nil }
  return Int(String(decoding: try cache.getObject(record), as: UTF8.self))
}
