import Foundation

/// How a run behaves.
public struct EngineOptions: Sendable {
  /// At most this many nodes at once.
  public var jobs: Int = max(2, ProcessInfo.processInfo.activeProcessorCount)
  /// At most this many heavy nodes at once.
  public var heavyJobs: Int = 1
  /// Look up and store results in the cache (false: compute everything, store nothing).
  public var useCache: Bool = true
  public var cancellation = CancellationToken()
  public init() {}
}

/// What happened to one node in a run.
public enum NodeOutcome: String, Sendable {
  case cached, ran, failed, skipped, cancelled
}

public struct RunResult: Sendable {
  public var outcomes: [String: NodeOutcome] = [:]
  /// Failure messages, each naming the node, its type and the cause.
  public var errors: [String] = []
  public var keys: [String: String] = [:]
  /// Nodes whose outputs were passed on but not stored (`NodeContext.doNotCache`), with their notes.
  public var notCached: [String: String] = [:]
  public var cancelled = false
  public var seconds: Double = 0
  public var succeeded: Bool { errors.isEmpty && !cancelled }

  public func count(_ outcome: NodeOutcome) -> Int { outcomes.values.filter { $0 == outcome }.count }
}

/// One line of `cogflow plan`.
public struct PlanItem: Sendable {
  public var node: String
  public var type: String
  /// nil when the key depends on outputs that are yet to be computed.
  public var key: String?
  /// "cached" or "run".
  public var status: String
  public var reason: String

  public var json: String {
    "{\"node\":\(Value.jsonString(node)),\"type\":\(Value.jsonString(type)),"
      + "\"key\":\(key.map(Value.jsonString) ?? "null"),\"status\":\(Value.jsonString(status)),"
      + "\"reason\":\(Value.jsonString(reason))}"
  }
}

/// Runs a resolved workflow on Dispatch with the disk cache: the heart of CogFlow.
public final class Engine: @unchecked Sendable {
  public let workflow: ResolvedWorkflow
  public let registry: NodeRegistry
  public let cache: DiskCache?
  public let options: EngineOptions
  private let emit: @Sendable (EngineEvent) -> Void

  private let lock = NSLock()
  private var outputs: [String: [String: OutputRef]] = [:]
  private var pendingInputs: [String: Int] = [:]
  private var dependents: [String: [String]] = [:]
  private var readyHeavy: [String] = []
  private var readyOther: [String] = []
  private var running = 0
  private var runningHeavy = 0
  private var finished = 0
  private var result = RunResult()
  private var blocked = Set<String>()
  /// Keys computed or being computed in this run: identical nodes (matrix instances) run once.
  private var keyOwners: [String: String] = [:]
  private var keyWaiters: [String: [(node: String, finish: () -> Void)]] = [:]
  private var keyOutputs: [String: [String: OutputRef]] = [:]
  private let done = DispatchSemaphore(value: 0)
  /// Cache writes run beside the computation (their fsyncs overlap); at most 16 in flight keep memory bounded.
  private let storeQueue = DispatchQueue(label: "cogflow.store", attributes: .concurrent)
  private let storeSlots = DispatchSemaphore(value: 16)
  private let storeGroup = DispatchGroup()

  /// How `execute` stores what it computed.
  private enum Storage {
    case none
    case sync
    /// In the background; the key's lock is released once the entry is on disk.
    case async(DiskCache.KeyLock)
  }

  public init(
    workflow: ResolvedWorkflow, registry: NodeRegistry, cache: DiskCache?, options: EngineOptions = EngineOptions(),
    events: @escaping @Sendable (EngineEvent) -> Void = { _ in }
  ) {
    self.workflow = workflow
    self.registry = registry
    self.cache = options.useCache ? cache : nil
    self.options = options
    self.emit = events
    self.cache?.onCorruption = { message in
      var event = EngineEvent(.cacheCorrupt)
      event.message = message
      events(event)
    }
  }

  private var workflowIdentity: String { workflow.name }
  private lazy var workflowSource: String = (try? String(contentsOfFile: workflow.file, encoding: .utf8)) ?? ""

  private func fileDigest(_ path: String) throws -> String {
    if let cache { return try cache.fileDigest(path, cancellation: options.cancellation) }
    return try DiskCache.hashRegularFile(path, cancellation: options.cancellation)
  }

  // MARK: plan

  /// Per node: its key when it can be known now, and whether it will come from the cache or run, with why.
  /// Reads only index entries and file stats (model files are hashed only if never seen before).
  public func plan() -> [PlanItem] {
    var known: [String: [String: OutputRecord]] = [:]
    var status: [String: String] = [:]
    var seenKeys: [String: String] = [:]
    var items: [PlanItem] = []
    for node in workflow.nodes {
      var records: [String: OutputRecord] = [:]
      var pendingFrom: (port: String, node: String)?
      for (port, source) in node.inputs.sorted(by: { $0.key < $1.key }) {
        switch source {
        case .literal(let artifact):
          records[port] = OutputRecord(digest: artifact.digest, type: artifact.type, size: artifact.bytes.count)
        case .edge(let up, let upPort):
          if let record = known[up]?[upPort] {
            records[port] = record
          } else if pendingFrom == nil {
            pendingFrom = (port, up)
          }
        }
      }
      if let pending = pendingFrom {
        status[node.id] = "run"
        let reason =
          status[pending.node] == "failed"
          ? "input \(pending.port) cannot be computed"
          : "input \(pending.port) comes from \(pending.node), which runs (may still hit the cache if its bytes don't change)"
        items.append(PlanItem(node: node.id, type: node.type, key: nil, status: "run", reason: reason))
        continue
      }
      let parts: KeyParts
      do {
        parts = try KeyBuilder.parts(for: node, inputs: records, fileDigest: fileDigest)
      } catch {
        status[node.id] = "failed"
        items.append(PlanItem(node: node.id, type: node.type, key: nil, status: "run", reason: "cannot hash: \(error)"))
        continue
      }
      let key = parts.key
      if node.spec.cachePolicy == .alwaysRun {
        items.append(
          PlanItem(
            node: node.id, type: node.type, key: key, status: "run", reason: "always runs (writes outside the cache)"))
        status[node.id] = "run"
        continue
      }
      if let first = seenKeys[key] {
        known[node.id] = known[first]
        status[node.id] = status[first]
        items.append(
          PlanItem(
            node: node.id, type: node.type, key: key, status: status[first] == "cached" ? "cached" : "run",
            reason: "same key as \(first): computed once"))
        continue
      }
      seenKeys[key] = node.id
      if let entry = cache?.lookup(key) {
        known[node.id] = entry.outputs
        status[node.id] = "cached"
        items.append(PlanItem(node: node.id, type: node.type, key: key, status: "cached", reason: "in the cache"))
        continue
      }
      status[node.id] = "run"
      var reason = options.useCache ? "not in the cache" : "--no-cache"
      if options.useCache, let old = cache?.history(workflow: workflowIdentity, node: node.id) {
        let changes = KeyBuilder.differences(old: old, new: parts)
        reason = changes.isEmpty ? "not in the cache (evicted or never stored)" : changes.joined(separator: "; ")
      } else if options.useCache {
        reason = "not in the cache (never run)"
      }
      items.append(PlanItem(node: node.id, type: node.type, key: key, status: "run", reason: reason))
    }
    return items
  }

  // MARK: run

  /// Runs every node (in dependency order, overlapping independent branches) and returns what happened.
  /// Never throws for node failures: they are in the result.
  public func run() -> RunResult {
    let start = Date()
    try? cache?.beginRun()
    defer { cache?.endRun() }
    dependents = workflow.dependents()
    for node in workflow.nodes {
      pendingInputs[node.id] =
        Set(
          node.inputs.values.compactMap { source -> String? in
            if case .edge(let up, _) = source { return up }
            return nil
          }
        ).count
    }
    var startEvent = EngineEvent(.runStart)
    startEvent.workflow = workflow.name
    startEvent.counts = ["nodes": workflow.nodes.count]
    emit(startEvent)

    lock.lock()
    for node in workflow.nodes where pendingInputs[node.id] == 0 { enqueue(node.id) }
    let empty = workflow.nodes.isEmpty
    dispatchReady()
    lock.unlock()
    if !empty { done.wait() }
    storeGroup.wait()

    lock.lock()
    var final = result
    lock.unlock()
    final.cancelled = options.cancellation.isCancelled
    final.seconds = Date().timeIntervalSince(start)
    var doneEvent = EngineEvent(.runDone)
    doneEvent.seconds = final.seconds
    doneEvent.status = final.cancelled ? "cancelled" : (final.errors.isEmpty ? "ok" : "failed")
    var counts: [String: Int] = [:]
    for outcome in [NodeOutcome.cached, .ran, .failed, .skipped, .cancelled] {
      counts[outcome.rawValue] = final.count(outcome)
    }
    doneEvent.counts = counts
    emit(doneEvent)
    return final
  }

  /// Call with `lock` held.
  private func enqueue(_ id: String) {
    guard let node = workflow.node(id) else { return }
    if node.spec.resource == .heavy { readyHeavy.append(id) } else { readyOther.append(id) }
  }

  /// Starts ready nodes while slots are free. Call with `lock` held.
  private func dispatchReady() {
    if options.cancellation.isCancelled {
      for id in readyHeavy + readyOther { finishLocked(id, outcome: .cancelled, outputs: nil) }
      readyHeavy.removeAll()
      readyOther.removeAll()
      return
    }
    while running < max(1, options.jobs) {
      let id: String
      if !readyHeavy.isEmpty && runningHeavy < max(1, options.heavyJobs) {
        id = readyHeavy.removeFirst()
        runningHeavy += 1
      } else if !readyOther.isEmpty {
        id = readyOther.removeFirst()
      } else {
        break
      }
      running += 1
      DispatchQueue.global().async { [self] in
        let (outcome, outs) = process(id)
        lock.lock()
        running -= 1
        if workflow.node(id)?.spec.resource == .heavy { runningHeavy -= 1 }
        if let outcome { finishLocked(id, outcome: outcome, outputs: outs) }
        dispatchReady()
        lock.unlock()
      }
    }
  }

  /// Records a node's outcome and releases or blocks its dependents. Call with `lock` held.
  /// Iterative: a failure at the head of a long chain skips the whole chain without deep recursion.
  private func finishLocked(_ id: String, outcome: NodeOutcome, outputs outs: [String: OutputRef]?) {
    var work: [(id: String, outcome: NodeOutcome, outputs: [String: OutputRef]?)] = [(id, outcome, outs)]
    while let (id, outcome, outs) = work.popLast() {
      guard result.outcomes[id] == nil else { continue }
      result.outcomes[id] = outcome
      finished += 1
      if let outs { outputs[id] = outs }
      for dep in dependents[id] ?? [] {
        if outcome == .cached || outcome == .ran {
          pendingInputs[dep, default: 1] -= 1
          if pendingInputs[dep] == 0 && !blocked.contains(dep) {
            if options.cancellation.isCancelled {
              work.append((dep, .cancelled, nil))
            } else {
              enqueue(dep)
            }
          }
        } else if !blocked.contains(dep) {
          blocked.insert(dep)
          if let node = workflow.node(dep) {
            var event = EngineEvent(.nodeSkipped, node: dep, type: node.type)
            event.message = outcome == .cancelled ? "cancelled" : "input from \(id) is missing (\(outcome.rawValue))"
            emit(event)
          }
          work.append((dep, outcome == .cancelled ? .cancelled : .skipped, nil))
        }
      }
      if finished == workflow.nodes.count { done.signal() }
    }
  }

  private func inputRecords(_ node: ResolvedNode) -> [String: OutputRef] {
    lock.lock()
    defer { lock.unlock() }
    var refs: [String: OutputRef] = [:]
    for (port, source) in node.inputs {
      switch source {
      case .literal(let artifact):
        refs[port] = OutputRef(
          record: OutputRecord(digest: artifact.digest, type: artifact.type, size: artifact.bytes.count),
          data: artifact.bytes)
      case .edge(let up, let upPort):
        refs[port] = outputs[up]?[upPort]
      }
    }
    return refs
  }

  private func fail(_ node: ResolvedNode, key: String?, _ message: String) -> NodeOutcome {
    // A node's error text is shown on terminals: control characters escaped, length capped.
    let message = Diagnostic.sanitize(message)
    var event = EngineEvent(.nodeFailed, node: node.id, type: node.type, key: key)
    event.error = message
    emit(event)
    lock.lock()
    result.errors.append("node '\(node.id)' (\(node.type)) failed: \(message)")
    lock.unlock()
    return .failed
  }

  /// Computes or fetches one node. Returns nil outcome when the node waits for an identical key in this run
  /// (it is finished by that key's owner).
  private func process(_ id: String) -> (NodeOutcome?, [String: OutputRef]?) {
    guard let node = workflow.node(id) else { return (.failed, nil) }
    if options.cancellation.isCancelled { return (.cancelled, nil) }
    var refs = inputRecords(node)
    var attempt = 0
    while true {
      attempt += 1
      let parts: KeyParts
      do {
        parts = try KeyBuilder.parts(for: node, inputs: refs.mapValues(\.record), fileDigest: fileDigest)
      } catch is CancelledError {
        return (.cancelled, nil)
      } catch {
        return (fail(node, key: nil, "cannot hash its files: \(error)"), nil)
      }
      let key = parts.key
      lock.lock()
      result.keys[id] = key
      lock.unlock()

      if node.spec.cachePolicy == .alwaysRun {
        let (outcome, outs) = execute(node, key: key, parts: parts, refs: &refs, storage: .none)
        if outcome == nil && attempt < 3 { continue }
        return (outcome ?? fail(node, key: key, "an input kept changing while it was recomputed"), outs)
      }

      // Same key earlier in this run: wait for it instead of computing twice.
      lock.lock()
      if let owner = keyOwners[key], owner != id {
        if let outs = keyOutputs[key] {
          inheritNotCached(id, from: owner)
          lock.unlock()
          var event = EngineEvent(.nodeCached, node: id, type: node.type, key: key)
          event.message = "same key as \(owner)"
          emit(event)
          return (.cached, outs)
        }
        keyWaiters[key, default: []].append(
          (
            id,
            { [self] in
              // Called with `lock` held by the owner's completion.
              if let outs = keyOutputs[key] {
                inheritNotCached(id, from: owner)
                var event = EngineEvent(.nodeCached, node: id, type: node.type, key: key)
                event.message = "same key as \(owner)"
                emit(event)
                finishLocked(id, outcome: .cached, outputs: outs)
              } else {
                finishLocked(id, outcome: result.outcomes[owner] == .cancelled ? .cancelled : .skipped, outputs: nil)
              }
            }
          ))
        lock.unlock()
        return (nil, nil)
      }
      keyOwners[key] = id
      lock.unlock()

      var (outcome, outs, retry) = computeOwned(node, key: key, parts: parts, refs: &refs)
      if retry && attempt < 3 {
        lock.lock()
        keyOwners[key] = nil
        // Nodes waiting for the old key start over: their inputs may have changed too.
        for waiter in keyWaiters.removeValue(forKey: key) ?? [] { enqueue(waiter.node) }
        lock.unlock()
        continue
      }
      if outcome == nil {
        outcome = fail(node, key: key, "an input kept changing while it was recomputed")
        outs = nil
      }
      lock.lock()
      if let outs, outcome == .cached || outcome == .ran { keyOutputs[key] = outs }
      let waiters = keyWaiters.removeValue(forKey: key) ?? []
      if !waiters.isEmpty {
        // Finish this node first so waiters see a consistent state.
        finishLocked(id, outcome: outcome ?? .failed, outputs: outs)
        for waiter in waiters { waiter.finish() }
        lock.unlock()
        return (nil, nil)
      }
      lock.unlock()
      return (outcome, outs)
    }
  }

  /// A node that took an identical node's outputs in this run shares its not-stored mark. Call with `lock` held.
  private func inheritNotCached(_ id: String, from owner: String) {
    if let note = result.notCached[owner] { result.notCached[id] = note }
  }

  /// Lookup, lock, lookup again, compute. `retry` asks the caller to recompute the key because an input
  /// had to be recomputed and came out different.
  private func computeOwned(_ node: ResolvedNode, key: String, parts: KeyParts, refs: inout [String: OutputRef])
    -> (NodeOutcome?, [String: OutputRef]?, retry: Bool)
  {
    guard let cache else {
      let (outcome, outs) = execute(node, key: key, parts: parts, refs: &refs, storage: .none)
      return (outcome, outs, outcome == nil)
    }
    if let hit = cachedOutputs(node, key: key, how: "cache") { return (.cached, hit, false) }
    var waited = false
    let keyLock: DiskCache.KeyLock
    do {
      keyLock = try cache.lockKey(key, cancellation: options.cancellation, waited: &waited)
    } catch is CancelledError {
      return (.cancelled, nil, false)
    } catch {
      return (fail(node, key: key, "\(error)"), nil, false)
    }
    if let hit = cachedOutputs(node, key: key, how: waited ? "computed by another process" : "cache") {
      keyLock.release()
      return (.cached, hit, false)
    }
    // execute releases the lock, after the outputs are stored.
    let (outcome, outs) = execute(node, key: key, parts: parts, refs: &refs, storage: .async(keyLock))
    if outcome == nil { return (nil, nil, true) }
    return (outcome, outs, false)
  }

  private func cachedOutputs(_ node: ResolvedNode, key: String, how: String) -> [String: OutputRef]? {
    guard let cache, let entry = cache.lookup(key) else { return nil }
    // Every declared output must be there (an entry from an older version of the type might lack one).
    guard node.spec.outputs.allSatisfy({ entry.outputs[$0.name] != nil }) else { return nil }
    cache.touch(key)
    cache.recordHistory(workflow: workflowIdentity, node: node.id, entry: entry)
    var event = EngineEvent(.nodeCached, node: node.id, type: node.type, key: key)
    event.message = how
    emit(event)
    return entry.outputs.mapValues { OutputRef(record: $0, data: nil) }
  }

  /// What `node` may record about its origin. Built only when the node asks (save-image does): it walks the
  /// node's ancestors, whose keys are all known by now, so the record depends on the graph and never on which
  /// other branches happen to have started.
  private func provenance(of node: ResolvedNode, parts: KeyParts) -> Provenance {
    var provenance = Provenance()
    provenance.workflowName = workflow.name
    provenance.workflowFile = workflow.file
    provenance.overrides = workflow.overrides
    provenance.params = workflow.params
    provenance.fileDigests = parts.files
    var ancestors = Set<String>()
    var stack = [node.id]
    while let id = stack.popLast() {
      guard let current = workflow.node(id) else { continue }
      for case .edge(let up, _) in current.inputs.values where ancestors.insert(up).inserted { stack.append(up) }
    }
    lock.lock()
    provenance.workflowSource = workflowSource
    for id in ancestors {
      provenance.nodeKeys[id] = result.keys[id]
      if let note = result.notCached[id] { provenance.notCached[id] = note }
    }
    lock.unlock()
    for id in ancestors.union([node.id]).sorted() {
      guard let current = workflow.node(id) else { continue }
      for model in current.params.models.values {
        // The digests were computed for the keys already: this reads the cache's memo.
        let digest = (try? model.digest(fileDigest: fileDigest)) ?? "unavailable"
        provenance.models[model.name] = ProvenanceModel(path: model.path, digest: digest)
      }
    }
    return provenance
  }

  /// Loads input bytes (recomputing a producer whose cached object turns out corrupt), runs the node and
  /// stores its outputs. Returns a nil outcome when a recomputed input changed digest (the key must be redone).
  private func execute(
    _ node: ResolvedNode, key: String, parts: KeyParts, refs: inout [String: OutputRef], storage: Storage
  ) -> (NodeOutcome?, [String: OutputRef]?) {
    var heldLock: DiskCache.KeyLock?
    if case .async(let keyLock) = storage { heldLock = keyLock }
    defer { heldLock?.release() }
    var artifacts: [String: Artifact] = [:]
    var changed = false
    for (port, ref) in refs.sorted(by: { $0.key < $1.key }) {
      do {
        let loaded = try materialize(ref, consumer: node, port: port)
        if loaded.record != ref.record { changed = true }
        artifacts[port] = Artifact(type: loaded.record.type, bytes: loaded.data ?? Data())
        refs[port] = loaded
      } catch is CancelledError {
        return (.cancelled, nil)
      } catch {
        return (fail(node, key: key, "cannot load input \(port): \(error)"), nil)
      }
    }
    if changed { return (nil, nil) }
    if options.cancellation.isCancelled { return (.cancelled, nil) }
    guard let type = registry[node.type] else { return (fail(node, key: key, "node type not registered"), nil) }

    emit(EngineEvent(.nodeStart, node: node.id, type: node.type, key: key))
    let started = Date()
    let context = NodeContext(
      node: node.id, type: node.type, key: key, cancellation: options.cancellation,
      provenance: self.provenance(of: node, parts: parts),
      onProgress: { [emit] step, total in
        var event = EngineEvent(.progress, node: node.id, type: node.type, key: key)
        event.step = step
        event.total = total
        emit(event)
      },
      onLog: { [emit] message in
        var event = EngineEvent(.nodeLog, node: node.id, type: node.type, key: key)
        event.message = message
        emit(event)
      })
    let produced: [String: Artifact]
    do {
      produced = try type.run(inputs: NodeInputs(artifacts, node: node.id), params: node.params, context: context)
    } catch is CancelledError {
      var event = EngineEvent(.nodeSkipped, node: node.id, type: node.type, key: key)
      event.message = "cancelled"
      emit(event)
      return (.cancelled, nil)
    } catch {
      return (fail(node, key: key, "\(error)"), nil)
    }
    let seconds = Date().timeIntervalSince(started)
    var outs: [String: OutputRef] = [:]
    for port in node.spec.outputs {
      guard let artifact = produced[port.name] else {
        return (fail(node, key: key, "implementation returned no output '\(port.name)'"), nil)
      }
      if port.type != "any" && artifact.type != port.type {
        return (
          fail(node, key: key, "output '\(port.name)' has type \(artifact.type), declared \(port.type)"), nil
        )
      }
      outs[port.name] = OutputRef(
        record: OutputRecord(digest: artifact.digest, type: artifact.type, size: artifact.bytes.count),
        data: artifact.bytes)
    }
    if let extra = produced.keys.first(where: { node.spec.output($0) == nil }) {
      return (fail(node, key: key, "implementation returned undeclared output '\(extra)'"), nil)
    }
    if let note = context.doNotCacheNote {
      // Passed on, not stored: the key lock (if any) is released by the deferred release above.
      lock.lock()
      result.notCached[node.id] = note
      lock.unlock()
      var event = EngineEvent(.nodeDone, node: node.id, type: node.type, key: key)
      event.seconds = seconds
      event.message = "not cached: \(note)"
      emit(event)
      return (.ran, outs)
    }
    let entry = CacheEntry(
      key: key, nodeType: node.type, version: node.spec.version, outputs: outs.mapValues(\.record), seconds: seconds,
      created: Date().timeIntervalSince1970, params: parts.params, inputs: parts.inputs, files: parts.files)
    if let cache {
      // Objects first, then the index entry that points at them: a crash in between leaves only
      // unreferenced objects, which gc removes.
      let write = { [emit] in
        do {
          for ref in outs.values { try cache.putObject(ref.data ?? Data(), digest: ref.record.digest) }
          try cache.store(entry)
        } catch {
          var event = EngineEvent(.cacheError, node: node.id, type: node.type, key: key)
          event.error = "outputs not stored: \(error)"
          emit(event)
        }
      }
      switch storage {
      case .none: break
      case .sync: write()
      case .async(let keyLock):
        heldLock = nil
        storeSlots.wait()
        storeGroup.enter()
        storeQueue.async { [storeSlots, storeGroup] in
          write()
          keyLock.release()
          storeSlots.signal()
          storeGroup.leave()
        }
      }
    }
    cache?.recordHistory(workflow: workflowIdentity, node: node.id, entry: entry)
    var event = EngineEvent(.nodeDone, node: node.id, type: node.type, key: key)
    event.seconds = seconds
    emit(event)
    return (.ran, outs)
  }

  /// The bytes of an input: in memory, or read from the cache with its checksum verified. A corrupt object
  /// is dropped and its producer recomputed here (the cache never returns bad bytes).
  /// Returns the ref with its bytes; its record differs from `ref`'s only when the producer was recomputed
  /// and came out different (then the consumer's key must be recomputed).
  private func materialize(_ ref: OutputRef, consumer: ResolvedNode, port: String) throws -> OutputRef {
    if ref.data != nil { return ref }
    guard let cache else { throw WorkflowError.cache(path: "", message: "no bytes for input \(port)") }
    do {
      return OutputRef(record: ref.record, data: try cache.getObject(ref.record))
    } catch let corruption as CacheCorruption {
      guard case .edge(let producerID, let producerPort)? = consumer.inputs[port],
        let producer = workflow.node(producerID)
      else { throw corruption }
      lock.lock()
      if let key = result.keys[producerID] { cache.drop(key) }
      lock.unlock()
      var refs = inputRecords(producer)
      let parts = try KeyBuilder.parts(for: producer, inputs: refs.mapValues(\.record), fileDigest: fileDigest)
      let (outcome, outs) = execute(producer, key: parts.key, parts: parts, refs: &refs, storage: .sync)
      guard outcome == .ran, let fresh = outs?[producerPort], fresh.data != nil else {
        throw WorkflowError.nodeFailed(
          node: producerID, type: producer.type, message: "recomputing after a corrupt cache object failed")
      }
      lock.lock()
      outputs[producerID] = outs
      lock.unlock()
      return fresh
    }
  }
}
