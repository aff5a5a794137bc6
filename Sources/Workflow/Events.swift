import Foundation

/// What the engine reports while it runs; `--events` writes these as JSON lines.
public struct EngineEvent: Sendable {
  public enum Kind: String, Sendable {
    case runStart = "run-start"
    case nodeCached = "node-cached"
    case nodeStart = "node-start"
    case progress
    case nodeDone = "node-done"
    case nodeFailed = "node-failed"
    /// A node that did not run because an input failed or the run was cancelled.
    case nodeSkipped = "node-skipped"
    /// A corrupt cache entry or object was found, dropped and will be recomputed.
    case cacheCorrupt = "cache-corrupt"
    /// Outputs could not be written to the cache (disk full, permissions); the run goes on without them.
    case cacheError = "cache-error"
    /// A message from a running node (`NodeContext.log`).
    case nodeLog = "node-log"
    case runDone = "run-done"
  }

  public var kind: Kind
  public var node: String?
  public var type: String?
  public var key: String?
  public var step: Int?
  public var total: Int?
  public var seconds: Double?
  public var error: String?
  /// Free text: why a node was cached ("cache", "other-process", "same-key"), run summaries, warnings.
  public var message: String?
  /// run-start: node count; run-done: counts by outcome.
  public var counts: [String: Int]?
  public var workflow: String?
  public var status: String?

  public init(_ kind: Kind, node: String? = nil, type: String? = nil, key: String? = nil) {
    self.kind = kind
    self.node = node
    self.type = type
    self.key = key
  }

  /// One JSON object with `event` first; absent fields are left out.
  public var jsonLine: String {
    var fields: [(String, String)] = [("event", Value.jsonString(kind.rawValue))]
    func add(_ name: String, _ value: String?) { if let value { fields.append((name, value)) } }
    add("node", node.map(Value.jsonString))
    add("type", type.map(Value.jsonString))
    // Every node event has `key`: null when it was never computed (a skipped or cancelled node).
    add("key", key.map(Value.jsonString) ?? (node == nil ? nil : "null"))
    add("workflow", workflow.map(Value.jsonString))
    add("step", step.map(String.init))
    add("total", total.map(String.init))
    add("seconds", seconds.map { String(format: "%.6f", $0) })
    add("status", status.map(Value.jsonString))
    add("error", error.map(Value.jsonString))
    add("message", message.map(Value.jsonString))
    if let counts {
      let body = counts.keys.sorted().map { "\(Value.jsonString($0)):\(counts[$0]!)" }.joined(separator: ",")
      fields.append(("counts", "{\(body)}"))
    }
    add("time", String(format: "%.6f", Date().timeIntervalSince1970))
    return "{" + fields.map { "\(Value.jsonString($0.0)):\($0.1)" }.joined(separator: ",") + "}"
  }
}

/// Writes events as JSON lines to a file handle, one write per line (safe from many threads).
public final class JSONLinesEventWriter: @unchecked Sendable {
  private let handle: FileHandle
  private let lock = NSLock()

  public init(handle: FileHandle) { self.handle = handle }

  public func write(_ event: EngineEvent) {
    let line = Data((event.jsonLine + "\n").utf8)
    lock.lock()
    handle.write(line)
    lock.unlock()
  }
}

/// The human display: on a terminal, finished nodes as lines and running nodes as live bars with ETA;
/// otherwise plain lines only (one per node event, progress every 10%).
public final class ProgressDisplay: @unchecked Sendable {
  private let handle: FileHandle
  private let isTerminal: Bool
  private let lock = NSLock()
  private var active: [(node: String, started: Date, step: Int, total: Int)] = []
  private var drawnLines = 0
  private var lastDraw = Date.distantPast
  private var lastPlainPercent: [String: Int] = [:]

  public init(handle: FileHandle = .standardError, isTerminal: Bool? = nil) {
    self.handle = handle
    self.isTerminal = isTerminal ?? (isatty(handle.fileDescriptor) == 1)
  }

  private func emit(_ text: String) { handle.write(Data(text.utf8)) }

  public func handle(_ event: EngineEvent) {
    lock.lock()
    defer { lock.unlock() }
    let node = event.node ?? ""
    var line: String?
    switch event.kind {
    case .runStart:
      line = "run \(event.workflow ?? "") — \(event.counts?["nodes"] ?? 0) nodes"
    case .nodeCached:
      line = "  cached  \(node) (\(event.type ?? ""))\(event.message.map { " [\($0)]" } ?? "")"
    case .nodeStart:
      active.append((node, Date(), 0, 0))
      if !isTerminal { line = "  start   \(node) (\(event.type ?? ""))" }
    case .progress:
      if let i = active.firstIndex(where: { $0.node == node }) {
        active[i].step = event.step ?? 0
        active[i].total = event.total ?? 0
      }
      if !isTerminal, let step = event.step, let total = event.total, total > 0 {
        let percent = step * 100 / total / 10 * 10
        if percent != lastPlainPercent[node] {
          lastPlainPercent[node] = percent
          line = "  \(node): step \(step)/\(total)"
        }
      }
    case .nodeDone:
      active.removeAll { $0.node == node }
      line = String(format: "  done    %@ (%@) %.2fs", node, event.type ?? "", event.seconds ?? 0)
      if let note = event.message, let done = line { line = done + " [\(note)]" }
    case .nodeFailed:
      active.removeAll { $0.node == node }
      line = "  FAILED  \(node) (\(event.type ?? "")): \(event.error ?? "")"
    case .nodeSkipped:
      line = "  skipped \(node) (\(event.type ?? "")): \(event.message ?? "")"
    case .cacheCorrupt:
      line = "  warning: \(event.message ?? "")"
    case .nodeLog:
      line = "  \(node): \(event.message ?? "")"
    case .cacheError:
      line = "  warning: \(event.node ?? ""): \(event.error ?? "")"
    case .runDone:
      active.removeAll()
      let counts = event.counts ?? [:]
      let summary = counts.keys.sorted().filter { counts[$0]! > 0 }.map { "\(counts[$0]!) \($0)" }
        .joined(separator: ", ")
      line = String(format: "%@ in %.2fs: %@", event.status ?? "done", event.seconds ?? 0, summary)
    }
    guard isTerminal else {
      if let line { emit(line + "\n") }
      return
    }
    let now = Date()
    if line == nil && now.timeIntervalSince(lastDraw) < 0.1 { return }
    lastDraw = now
    var out = ""
    if drawnLines > 0 { out += "\u{1B}[\(drawnLines)A\u{1B}[J" }
    if let line { out += line + "\n" }
    for item in active {
      out += bar(item, now: now) + "\n"
    }
    drawnLines = active.count
    emit(out)
  }

  private func bar(_ item: (node: String, started: Date, step: Int, total: Int), now: Date) -> String {
    let elapsed = now.timeIntervalSince(item.started)
    guard item.total > 0 else { return String(format: "  %@ running %.1fs", item.node, elapsed) }
    let width = 30
    let filled = min(width, item.step * width / item.total)
    let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
    var eta = "?"
    if item.step > 0 {
      eta = String(format: "%.1fs", elapsed / Double(item.step) * Double(item.total - item.step))
    }
    return "  \(item.node) [\(bar)] \(item.step)/\(item.total) ETA \(eta)"
  }
}
