import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// One stored output of a cache entry.
public struct OutputRecord: Codable, Sendable, Hashable {
  public var digest: String
  public var type: String
  public var size: Int
}

/// A key → outputs index entry, with what went into the key (for `plan`'s reasons) and what it cost.
public struct CacheEntry: Codable, Sendable {
  public var key: String
  public var nodeType: String
  public var version: Int
  public var outputs: [String: OutputRecord]
  /// Seconds the node took: eviction keeps expensive entries longer.
  public var seconds: Double
  public var created: Double
  /// Canonical parameters, input digests and file digests: what made the key.
  public var params: [String: String]
  public var inputs: [String: String]
  public var files: [String: String]

  public var size: Int { outputs.values.reduce(0) { $0 + $1.size } }
}

/// A cache entry or object failed its checksum or could not be parsed.
public struct CacheCorruption: Error, CustomStringConvertible, Sendable {
  public var path: String
  public var reason: String
  public var description: String { "corrupt cache file \(path): \(reason) (dropped)" }
}

/// The persistent content-addressed cache.
///
/// Layout under `root`:
/// `objects/ab/<sha256>` output bytes named by their digest; `index/ab/<key>` a checksum line then one JSON
/// `CacheEntry`; `locks/<key>` per-key flock files; `tmp/` writes in progress; `files/` remembered file
/// digests; `history/` the last key of each (workflow, node) for `plan`; `cache.lock` shared by runs,
/// exclusive for gc/clear/verify; `config.json` the byte budget.
public final class DiskCache: @unchecked Sendable {
  public let root: URL
  private let fm = FileManager.default
  private let memoLock = NSLock()
  private var fileDigestMemo: [String: (stamp: FileStamp, digest: String)] = [:]
  /// Files this process has read to hash (not found in the memo): tests check a cached rerun hashes none.
  public private(set) var filesHashed = 0
  /// Called with a message when a corrupt entry or object is dropped.
  public var onCorruption: @Sendable (String) -> Void = { _ in }
  private var runLockFD: Int32 = -1

  public init(root: URL) throws {
    self.root = root
    if let kind = RegularFile.kind(root.path), !kind.isDirectory {
      throw WorkflowError.cache(path: root.path, message: "is \(kind.name), not a folder (give --cache a folder)")
    }
    for sub in ["objects", "index", "locks", "tmp", "files", "history", "runs"] {
      do {
        try fm.createDirectory(at: root.appendingPathComponent(sub), withIntermediateDirectories: true)
      } catch {
        throw WorkflowError.cache(path: root.path, message: "cannot create cache folder: \(error.localizedDescription)")
      }
    }
  }

  deinit {
    if runLockFD >= 0 { close(runLockFD) }
  }

  /// `--cache`, else `$COGFLOW_CACHE`, else `$XDG_CACHE_HOME/cogflow`, else `~/.cache/cogflow`.
  public static func defaultLocation(
    explicit: String? = nil,
    environment: [String: String] = ProcessInfo.processInfo
      .environment
  ) -> URL {
    if let explicit, !explicit.isEmpty { return URL(fileURLWithPath: explicit) }
    if let env = environment["COGFLOW_CACHE"], !env.isEmpty { return URL(fileURLWithPath: env) }
    if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
      return URL(fileURLWithPath: xdg).appendingPathComponent("cogflow")
    }
    #if os(macOS)
      return homeDirectory().appendingPathComponent("Library/Caches/cogflow")
    #else
      return homeDirectory().appendingPathComponent(".cache/cogflow")
    #endif
  }

  private static func homeDirectory() -> URL { FileManager.default.homeDirectoryForCurrentUser }

  // MARK: paths

  func objectPath(_ digest: String) -> String {
    root.appendingPathComponent("objects/\(digest.prefix(2))/\(digest)").path
  }

  func indexPath(_ key: String) -> String {
    root.appendingPathComponent("index/\(key.prefix(2))/\(key)").path
  }

  // MARK: atomic writes

  /// Test hook: `COGFLOW_DEBUG_SLOW_WRITE_MS` pauses mid-write so a test can kill the process there.
  private static let slowWriteMs: Int =
    Int(ProcessInfo.processInfo.environment["COGFLOW_DEBUG_SLOW_WRITE_MS"] ?? "") ?? 0

  /// Writes to `tmp/`, fsyncs (when `durable`), renames into place: a crash leaves either the old state or
  /// the complete new file, never a partial one under the final name. The folder is not fsynced: after a
  /// power loss a rename may be missing, which only loses an entry (and checksums catch anything else).
  func atomicWrite(_ data: Data, to path: String, durable: Bool = true) throws {
    let dir = (path as NSString).deletingLastPathComponent
    try? fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let tmp = root.appendingPathComponent("tmp/\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)").path
    let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    guard fd >= 0 else { throw WorkflowError.cache(path: tmp, message: "cannot create: \(errnoText())") }
    var ok = false
    defer {
      close(fd)
      if !ok { unlink(tmp) }
    }
    try data.withUnsafeBytes { raw in
      var offset = 0
      let half = raw.count / 2
      while offset < raw.count {
        var chunk = min(raw.count - offset, 8 << 20)
        if Self.slowWriteMs > 0 && offset < half { chunk = min(chunk, half - offset) }
        let n = write(fd, raw.baseAddress! + offset, chunk)
        if n < 0 {
          if errno == EINTR { continue }
          throw WorkflowError.cache(path: tmp, message: "write failed: \(errnoText())")
        }
        offset += n
        if Self.slowWriteMs > 0 && offset == half { usleep(UInt32(Self.slowWriteMs) * 1000) }
      }
    }
    if Self.slowWriteMs > 0 && data.count < 2 { usleep(UInt32(Self.slowWriteMs) * 1000) }
    if durable && fsync(fd) != 0 {
      throw WorkflowError.cache(path: tmp, message: "fsync failed: \(errnoText())")
    }
    guard rename(tmp, path) == 0 else {
      throw WorkflowError.cache(path: path, message: "rename failed: \(errnoText())")
    }
    ok = true
  }

  // MARK: objects

  /// Stores bytes under their digest (no-op when an object of that size is already there).
  public func putObject(_ bytes: Data, digest: String) throws {
    let path = objectPath(digest)
    var st = stat()
    if stat(path, &st) == 0, Int(st.st_size) == bytes.count { return }
    try atomicWrite(bytes, to: path)
  }

  /// Reads an object and checks its digest; a mismatch deletes it and throws `CacheCorruption`.
  public func getObject(_ record: OutputRecord) throws -> Data {
    let path = objectPath(record.digest)
    guard let data = fm.contents(atPath: path) else {
      throw CacheCorruption(path: path, reason: "object missing")
    }
    if data.count != record.size || SHA256.hash(data) != record.digest {
      unlink(path)
      let problem = CacheCorruption(path: path, reason: "checksum mismatch")
      onCorruption(problem.description)
      throw problem
    }
    return data
  }

  func objectPresent(_ record: OutputRecord) -> Bool {
    var st = stat()
    return stat(objectPath(record.digest), &st) == 0 && Int(st.st_size) == record.size
  }

  // MARK: index

  static func encodeEntry(_ entry: CacheEntry) -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let json = (try? encoder.encode(entry)) ?? Data()
    var data = Data((SHA256.hash(json) + "\n").utf8)
    data.append(json)
    return data
  }

  static func decodeEntry(_ data: Data) -> CacheEntry? {
    guard let newline = data.firstIndex(of: 0x0a) else { return nil }
    let sum = String(decoding: data[data.startIndex..<newline], as: UTF8.self)
    let json = data[data.index(after: newline)...]
    guard SHA256.hash(Data(json)) == sum else { return nil }
    return try? JSONDecoder().decode(CacheEntry.self, from: Data(json))
  }

  /// The entry for `key` when it and all its objects are present (objects are checked by size here and by
  /// checksum when read). A corrupt entry is deleted and reported; a missing object drops the entry.
  public func lookup(_ key: String) -> CacheEntry? {
    let path = indexPath(key)
    guard let data = fm.contents(atPath: path) else { return nil }
    guard let entry = Self.decodeEntry(data), entry.key == key else {
      unlink(path)
      onCorruption(CacheCorruption(path: path, reason: "index entry checksum mismatch").description)
      return nil
    }
    for record in entry.outputs.values where !objectPresent(record) {
      unlink(path)
      onCorruption(CacheCorruption(path: objectPath(record.digest), reason: "object missing or truncated").description)
      return nil
    }
    return entry
  }

  /// Marks an entry as used now (its age for eviction).
  public func touch(_ key: String) {
    utimes(indexPath(key), nil)
  }

  public func store(_ entry: CacheEntry) throws {
    try atomicWrite(Self.encodeEntry(entry), to: indexPath(entry.key))
  }

  public func drop(_ key: String) {
    unlink(indexPath(key))
  }

  // MARK: history (for plan's reasons)

  func historyPath(workflow: String, node: String) -> String {
    root.appendingPathComponent("history/\(SHA256.hash(workflow + "\u{0}" + node))").path
  }

  /// Advisory (only `plan`'s reasons read it): written without fsync, and not rewritten when unchanged.
  public func recordHistory(workflow: String, node: String, entry: CacheEntry) {
    let path = historyPath(workflow: workflow, node: node)
    let data = Self.encodeEntry(entry)
    if let old = fm.contents(atPath: path), old == data {
      utimes(path, nil)  // in use: gc keeps history records used in the last 30 days
      return
    }
    try? atomicWrite(data, to: path, durable: false)
  }

  public func history(workflow: String, node: String) -> CacheEntry? {
    fm.contents(atPath: historyPath(workflow: workflow, node: node)).flatMap(Self.decodeEntry)
  }

  // MARK: locks

  /// Holds a per-key lock while the key is computed, so another process waits instead of computing it too.
  public final class KeyLock {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }
    public func release() {
      flock(fd, LOCK_UN)
      close(fd)
    }
  }

  /// Takes the key's lock, polling so that cancellation is noticed; `waited` is set when another holder was seen.
  public func lockKey(_ key: String, cancellation: CancellationToken, waited: inout Bool) throws -> KeyLock {
    let path = root.appendingPathComponent("locks/\(key)").path
    let fd = open(path, O_RDWR | O_CREAT, 0o644)
    guard fd >= 0 else { throw WorkflowError.cache(path: path, message: "cannot open lock: \(errnoText())") }
    while flock(fd, LOCK_EX | LOCK_NB) != 0 {
      if errno != EWOULDBLOCK && errno != EINTR {
        let text = errnoText()
        close(fd)
        throw WorkflowError.cache(path: path, message: "flock failed: \(text)")
      }
      waited = true
      if cancellation.isCancelled {
        close(fd)
        throw CancelledError()
      }
      usleep(10_000)
    }
    return KeyLock(fd: fd)
  }

  /// Shared lock for the length of a run: gc/clear/verify take it exclusively.
  public func beginRun() throws {
    let path = root.appendingPathComponent("cache.lock").path
    let fd = open(path, O_RDWR | O_CREAT, 0o644)
    guard fd >= 0 else { throw WorkflowError.cache(path: path, message: "cannot open: \(errnoText())") }
    flock(fd, LOCK_SH)
    runLockFD = fd
  }

  public func endRun() {
    if runLockFD >= 0 {
      close(runLockFD)
      runLockFD = -1
    }
  }

  /// Runs `body` holding the whole cache exclusively (waits for running processes to finish).
  public func exclusive<T>(wait: Bool = true, _ body: () throws -> T) throws -> T? {
    let path = root.appendingPathComponent("cache.lock").path
    let fd = open(path, O_RDWR | O_CREAT, 0o644)
    guard fd >= 0 else { throw WorkflowError.cache(path: path, message: "cannot open: \(errnoText())") }
    defer { close(fd) }
    if flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0 { return nil }
    return try body()
  }

  // MARK: file digests

  struct FileStamp: Codable, Hashable {
    var path: String
    var size: Int64
    var mtimeSeconds: Int64
    var mtimeNanoseconds: Int64
    var inode: UInt64
    var device: UInt64
  }

  struct FileDigestRecord: Codable {
    var stamp: FileStamp
    var digest: String
  }

  static func stamp(_ path: String) throws -> FileStamp {
    var st = stat()
    guard stat(path, &st) == 0 else { throw WorkflowError.io(path: path, message: "cannot stat: \(errnoText())") }
    guard (st.st_mode & S_IFMT) == S_IFREG else {
      throw WorkflowError.io(path: path, message: "is \(RegularFile.kindName(st.st_mode)), not a regular file")
    }
    #if os(Linux)
      let seconds = Int64(st.st_mtim.tv_sec)
      let nanos = Int64(st.st_mtim.tv_nsec)
    #else
      let seconds = Int64(st.st_mtimespec.tv_sec)
      let nanos = Int64(st.st_mtimespec.tv_nsec)
    #endif
    return FileStamp(
      path: path, size: Int64(st.st_size), mtimeSeconds: seconds, mtimeNanoseconds: nanos, inode: UInt64(st.st_ino),
      device: UInt64(st.st_dev))
  }

  /// SHA-256 of a file's bytes, hashed once and then remembered (in memory and under `files/`) by path, size,
  /// mtime and inode, so a multi-GB model is read only when it changes.
  public func fileDigest(_ path: String, cancellation: CancellationToken? = nil) throws -> String {
    let stamp = try Self.stamp(path)
    memoLock.lock()
    if let memo = fileDigestMemo[path], memo.stamp == stamp {
      memoLock.unlock()
      return memo.digest
    }
    memoLock.unlock()
    let recordPath = root.appendingPathComponent("files/\(SHA256.hash(path))").path
    if let data = fm.contents(atPath: recordPath),
      let record = try? JSONDecoder().decode(FileDigestRecord.self, from: data), record.stamp == stamp
    {
      memoLock.lock()
      fileDigestMemo[path] = (stamp, record.digest)
      memoLock.unlock()
      return record.digest
    }
    let digest = try Self.hashRegularFile(path, cancellation: cancellation)
    memoLock.lock()
    filesHashed += 1
    fileDigestMemo[path] = (stamp, digest)
    memoLock.unlock()
    if let json = try? JSONEncoder().encode(FileDigestRecord(stamp: stamp, digest: digest)) {
      try? atomicWrite(json, to: recordPath, durable: false)
    }
    return digest
  }

  /// SHA-256 of a regular file (its type checked before any read), in 4 MiB chunks with a cancellation
  /// check between them, so Ctrl-C during the first hashing of a multi-GB model ends the run at once.
  public static func hashRegularFile(_ path: String, cancellation: CancellationToken? = nil) throws -> String {
    let fd: Int32
    do {
      fd = try RegularFile.openRegular(path, what: "file").fd
    } catch let problem as RegularFile.Problem {
      throw WorkflowError.io(path: path, message: problem.message)
    }
    defer { close(fd) }
    var hasher = SHA256()
    let chunk = 4 << 20
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 64)
    defer { buffer.deallocate() }
    while true {
      if cancellation?.isCancelled == true { throw CancelledError() }
      let n = read(fd, buffer.baseAddress, chunk)
      if n < 0 {
        if errno == EINTR { continue }
        throw WorkflowError.io(path: path, message: "read failed: \(errnoText())")
      }
      if n == 0 { break }
      hasher.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
    }
    return hasher.finalizeHex()
  }

  // MARK: maintenance

  public struct Stats: Sendable {
    public var entries = 0
    public var objects = 0
    public var objectBytes = 0
    public var tmpFiles = 0
    public var computeSeconds = 0.0
    public var maxBytes: Int?
  }

  func listFiles(_ sub: String) -> [String] {
    let base = root.appendingPathComponent(sub)
    guard let enumerator = fm.enumerator(at: base, includingPropertiesForKeys: [.isRegularFileKey]) else { return [] }
    var out: [String] = []
    while let url = enumerator.nextObject() as? URL {
      if (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true { out.append(url.path) }
    }
    return out
  }

  func fileSize(_ path: String) -> Int {
    var st = stat()
    return stat(path, &st) == 0 ? Int(st.st_size) : 0
  }

  func fileMTime(_ path: String) -> Double {
    var st = stat()
    guard stat(path, &st) == 0 else { return 0 }
    #if os(Linux)
      return Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) * 1e-9
    #else
      return Double(st.st_mtimespec.tv_sec) + Double(st.st_mtimespec.tv_nsec) * 1e-9
    #endif
  }

  public func stats() -> Stats {
    var stats = Stats()
    for path in listFiles("index") {
      guard let entry = fm.contents(atPath: path).flatMap(Self.decodeEntry) else { continue }
      stats.entries += 1
      stats.computeSeconds += entry.seconds
    }
    let objects = listFiles("objects")
    stats.objects = objects.count
    stats.objectBytes = objects.reduce(0) { $0 + fileSize($1) }
    stats.tmpFiles = listFiles("tmp").count
    stats.maxBytes = maxBytes
    return stats
  }

  /// The byte budget saved by `cache gc --max-size … --save` (enforced after each run).
  public var maxBytes: Int? {
    get {
      guard let data = fm.contents(atPath: root.appendingPathComponent("config.json").path),
        let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
      else { return nil }
      // A budget that is not a non-negative size (hand-edited config) is ignored rather than emptying the cache.
      guard let bytes = object["maxBytes"] as? Int, bytes >= 0 else { return nil }
      return bytes
    }
    set {
      let object: [String: Any] = newValue.map { ["maxBytes": $0] } ?? [:]
      if let data = try? JSONSerialization.data(withJSONObject: object) {
        try? atomicWrite(data, to: root.appendingPathComponent("config.json").path)
      }
    }
  }

  public struct GCReport: Sendable {
    public var entriesRemoved = 0
    public var objectsRemoved = 0
    public var bytesFreed = 0
    public var bytesKept = 0
  }

  /// Advisory records (history/, files/) untouched this long are removed by gc.
  static let advisoryMaxAge: Double = 30 * 86_400

  /// How much an entry is worth keeping per byte: compute seconds saved, discounted by age (days since use).
  /// The lowest go first.
  static func retentionScore(seconds: Double, bytes: Int, ageSeconds: Double) -> Double {
    (seconds + 0.01) / Double(max(bytes, 1)) / (1 + max(ageSeconds, 0) / 86_400)
  }

  /// Removes stale temp files and unreferenced objects, then evicts entries (lowest retention score first)
  /// until the objects fit in `maxBytes`. Call while holding the cache exclusively.
  public func collectGarbage(maxBytes: Int?) -> GCReport {
    var report = GCReport()
    for path in listFiles("tmp") { unlink(path) }
    let now = Date().timeIntervalSince1970
    var entries: [(path: String, entry: CacheEntry, score: Double)] = []
    for path in listFiles("index") {
      guard let entry = fm.contents(atPath: path).flatMap(Self.decodeEntry) else {
        unlink(path)
        report.entriesRemoved += 1
        continue
      }
      let age = now - fileMTime(path)
      entries.append((path, entry, Self.retentionScore(seconds: entry.seconds, bytes: entry.size, ageSeconds: age)))
    }
    var refs: [String: Int] = [:]
    for e in entries { for o in e.entry.outputs.values { refs[o.digest, default: 0] += 1 } }
    var sizes: [String: Int] = [:]
    for path in listFiles("objects") {
      let digest = (path as NSString).lastPathComponent
      let size = fileSize(path)
      if refs[digest] == nil {
        unlink(path)
        report.objectsRemoved += 1
        report.bytesFreed += size
      } else {
        sizes[digest] = size
      }
    }
    // locks/: nothing runs while gc holds the cache exclusively, so no lock file is in use.
    for path in listFiles("locks") { unlink(path) }
    // history/ and files/ are advisory (plan's reasons, remembered digests): drop records unused for 30 days,
    // and file-digest records of files that are gone.
    for sub in ["history", "files"] {
      for path in listFiles(sub) where now - fileMTime(path) > Self.advisoryMaxAge {
        unlink(path)
      }
    }
    for path in listFiles("files") {
      if let data = fm.contents(atPath: path),
        let record = try? JSONDecoder().decode(FileDigestRecord.self, from: data),
        !fm.fileExists(atPath: record.stamp.path)
      {
        unlink(path)
      }
    }
    // The budget counts everything the cache keeps: objects, index entries and the bookkeeping files.
    var total = sizes.values.reduce(0, +) + entries.reduce(0) { $0 + fileSize($1.path) }
    for sub in ["locks", "history", "files"] { total += listFiles(sub).reduce(0) { $0 + fileSize($1) } }
    total += fileSize(root.appendingPathComponent("config.json").path)
    if let maxBytes {
      for e in entries.sorted(by: { $0.score < $1.score }) where total > maxBytes {
        total -= fileSize(e.path)
        unlink(e.path)
        report.entriesRemoved += 1
        for o in e.entry.outputs.values {
          refs[o.digest, default: 1] -= 1
          if refs[o.digest] == 0, let size = sizes[o.digest] {
            unlink(objectPath(o.digest))
            report.objectsRemoved += 1
            report.bytesFreed += size
            total -= size
          }
        }
      }
    }
    // Still over: the advisory history records go too (plan's reasons only).
    if let maxBytes, total > maxBytes {
      for path in listFiles("history") {
        total -= fileSize(path)
        unlink(path)
      }
    }
    report.bytesKept = total
    return report
  }

  public struct VerifyReport: Sendable {
    public var entriesChecked = 0
    public var objectsChecked = 0
    /// Objects no entry pointed at, removed.
    public var unreferencedRemoved = 0
    public var problems: [String] = []
  }

  /// Checks every index entry's checksum and every object's digest; drops what is corrupt.
  public func verify() -> VerifyReport {
    var report = VerifyReport()
    var referenced = Set<String>()
    for path in listFiles("tmp") { unlink(path) }
    var entries: [(String, CacheEntry)] = []
    for path in listFiles("index") {
      report.entriesChecked += 1
      guard let entry = fm.contents(atPath: path).flatMap(Self.decodeEntry) else {
        report.problems.append("\(path): index entry checksum mismatch (removed)")
        unlink(path)
        continue
      }
      entries.append((path, entry))
    }
    var badObjects = Set<String>()
    var wanted = Set<String>()
    for (_, entry) in entries { for record in entry.outputs.values { wanted.insert(record.digest) } }
    for path in listFiles("objects") {
      report.objectsChecked += 1
      let digest = (path as NSString).lastPathComponent
      if !wanted.contains(digest) {
        // Not corruption (a crash between an object and its entry leaves these): removed, counted apart.
        unlink(path)
        report.unreferencedRemoved += 1
        continue
      }
      let actual = (try? SHA256.hashFile(atPath: path)) ?? ""
      if actual != digest {
        report.problems.append("\(path): object checksum mismatch (removed)")
        unlink(path)
        badObjects.insert(digest)
      }
    }
    for (path, entry) in entries {
      for record in entry.outputs.values {
        referenced.insert(record.digest)
        if badObjects.contains(record.digest) || !objectPresent(record) {
          report.problems.append("\(path): output object \(record.digest) missing or corrupt (entry removed)")
          unlink(path)
          break
        }
      }
    }
    return report
  }

  /// Deletes everything in the cache folder that the cache owns.
  public func clear() {
    for sub in ["objects", "index", "locks", "tmp", "files", "history", "runs"] {
      try? fm.removeItem(at: root.appendingPathComponent(sub))
      try? fm.createDirectory(at: root.appendingPathComponent(sub), withIntermediateDirectories: true)
    }
  }
}

func errnoText() -> String { String(cString: strerror(errno)) }
