import Foundation
import Tensor

/// A `torch.save` checkpoint (the zip format of PyTorch ≥ 1.6): `<name>/data.pkl`, read with the
/// restricted unpickler, plus one record `<name>/data/<key>` per storage. Opening reads the central
/// directory and the pickle only; stored (uncompressed) records are used in place from the mapping.
///
/// Tensors are exposed under dotted paths through the pickled dicts (`module.model.diffusion_model.…`),
/// relative to `select` when given. Views that `_rebuild_tensor_v2` describes with an offset and
/// row-major strides are served in place; other strides (transposed, expanded) are copied into a new
/// contiguous buffer when the tensor is asked for.
public final class TorchCheckpoint: TensorSource, @unchecked Sendable {
  public let location: String
  /// The whole unpickled object; tensors appear as references, nothing in it is callable.
  public let root: PickleValue
  /// The record folder inside the zip (`archive/`, or the saved file's stem).
  public let recordPrefix: String
  public let keys: [String]
  /// Largest copy made for a view with more elements than its storage (broadcast buffers are tiny).
  public static let maxExpandedBytes = 64 << 20
  private let tensors: [String: TorchTensorRef]
  private let archive: ZipArchive

  /// Opens `path`; `select` descends into dict entries first (SAT: `["module"]`).
  public convenience init(path: String, select: [String] = []) throws {
    let head = try Self.sniff(path)
    if head.starts(with: [0x80]) || head.starts(with: [0x8A, 0x0A]) {
      throw ModelIOError.unsupported(
        path: path, tensor: nil,
        reason: "legacy (pre-1.6, non-zip) torch.save format; re-save it with a current torch.save")
    }
    try self.init(archive: ZipArchive(path: path), select: select)
  }

  init(archive: ZipArchive, select: [String]) throws {
    let path = archive.path
    location = path
    self.archive = archive
    let pickles = archive.entries.filter {
      $0.name.hasSuffix("/data.pkl") && $0.name.dropLast("/data.pkl".count).firstIndex(of: "/") == nil
    }
    guard pickles.count == 1, let pkl = pickles.first else {
      throw ModelIOError.malformed(
        path: path, tensor: nil,
        reason: pickles.isEmpty
          ? "zip holds no '<name>/data.pkl' record: not a torch.save checkpoint"
          : "zip holds \(pickles.count) data.pkl records")
    }
    recordPrefix = String(pkl.name.dropLast("data.pkl".count))
    // Storages are raw bytes in the writer's byte order; torch records it (absent means little).
    if let order = archive.entry(recordPrefix + "byteorder") {
      let (st, off, n) = try archive.contents(order, verify: true)
      let text = String(decoding: UnsafeRawBufferPointer(start: st.base + off, count: min(n, 16)), as: UTF8.self)
      guard text == "little" else {
        throw ModelIOError.unsupported(path: path, tensor: nil, reason: "storages written in '\(text)' byte order")
      }
    }
    let (pstore, poff, pcount) = try archive.contents(pkl, verify: true)
    let value = try withExtendedLifetime(pstore) {
      try RestrictedUnpickler(path: path).load(UnsafeRawBufferPointer(start: pstore.base + poff, count: pcount))
    }
    root = value

    var node = value
    for (depth, component) in select.enumerated() {
      guard case .dict(let entries) = node else {
        throw ModelIOError.malformed(
          path: path, tensor: nil,
          reason: "expected a dict at '\(select.prefix(depth).joined(separator: "."))', found \(node.typeName)")
      }
      guard let hit = entries.first(where: { Self.keyString($0.key) == component }) else {
        let have = entries.compactMap { Self.keyString($0.key) }.prefix(20).joined(separator: ", ")
        throw ModelIOError.malformed(
          path: path, tensor: nil, reason: "no entry '\(component)' in the checkpoint (it has: \(have))")
      }
      node = hit.value
    }
    var found: [String: TorchTensorRef] = [:]
    Self.collect(node, prefix: "", into: &found)
    tensors = found
    keys = found.keys.sorted()
    for (key, t) in found.sorted(by: { $0.key < $1.key }) { try validate(key, t) }
  }

  public func info(_ key: String) throws -> TensorInfo {
    guard let t = tensors[key] else { throw ModelIOError.missingTensor(path: location, key: key) }
    return TensorInfo(dtype: t.dtype, shape: t.shape)
  }

  /// The view's description as the pickle gave it.
  public func reference(_ key: String) -> TorchTensorRef? { tensors[key] }

  public func stored(_ key: String) throws -> StoredTensor {
    guard let t = tensors[key] else { throw ModelIOError.missingTensor(path: location, key: key) }
    guard let entry = archive.entry(recordPrefix + "data/" + t.storageKey) else {
      throw ModelIOError.malformed(path: location, tensor: key, reason: "storage record missing")
    }
    let (storage, base, _) = try archive.contents(entry, verify: false)
    let el = t.dtype.byteSize
    let start = base + t.offset * el
    if t.isContiguous && (Int(bitPattern: storage.base) + start) % el == 0 {
      return try StoredTensor(dtype: t.dtype, shape: t.shape, storage: storage, offset: start)
    }
    // Strided or misaligned: gather into a fresh contiguous buffer, [shape] in row-major order.
    let count = t.shape.reduce(1, *)
    // A view larger than its storage (stride 0, expand) could ask for any size: bound it.
    guard count <= t.storageElements || count * el <= Self.maxExpandedBytes else {
      throw ModelIOError.unsupported(
        path: location, tensor: key,
        reason: "view \(t.shape) / \(t.strides) of a \(t.storageElements)-element storage would need "
          + "\(count * el) bytes when made contiguous (limit \(Self.maxExpandedBytes))")
    }
    let out = UnsafeMutableRawPointer.allocate(byteCount: max(count * el, 1), alignment: 64)
    let owned = ByteStorage(borrowing: UnsafeRawPointer(out), byteCount: count * el) { out.deallocate() }
    if count > 0 {
      let src = storage.base + start
      var index = [Int](repeating: 0, count: t.shape.count)
      var source = 0
      for i in 0..<count {
        (out + i * el).copyMemory(from: src + source * el, byteCount: el)
        // Odometer over the multi-index, tracking the strided source position.
        var d = t.shape.count - 1
        while d >= 0 {
          index[d] += 1
          source += t.strides[d]
          if index[d] < t.shape[d] { break }
          source -= t.strides[d] * t.shape[d]
          index[d] = 0
          d -= 1
        }
      }
    }
    return try StoredTensor(dtype: t.dtype, shape: t.shape, storage: owned, offset: 0)
  }

  /// Checks that the storage record exists and that the view stays inside it.
  private func validate(_ key: String, _ t: TorchTensorRef) throws {
    func bad(_ reason: String) -> ModelIOError { .malformed(path: location, tensor: key, reason: reason) }
    let name = recordPrefix + "data/" + t.storageKey
    guard let entry = archive.entry(name) else { throw bad("storage record '\(name)' is missing from the archive") }
    guard let declared = checkedByteCount([t.storageElements], t.dtype) else { throw bad("storage size overflows") }
    guard entry.uncompressedSize >= declared else {
      throw bad("storage record '\(name)' holds \(entry.uncompressedSize) bytes, the pickle declares \(declared)")
    }
    guard t.offset >= 0, t.shape.allSatisfy({ $0 >= 0 }), t.strides.allSatisfy({ $0 >= 0 }) else {
      throw bad("negative offset, size or stride in \(t.shape) / \(t.strides) @ \(t.offset)")
    }
    guard let n = checkedElementCount(t.shape), n.multipliedReportingOverflow(by: t.dtype.byteSize).overflow == false
    else { throw bad("shape \(t.shape) overflows") }
    if n == 0 { return }
    var last = t.offset
    for (s, st) in zip(t.shape, t.strides) {
      let (m, o1) = (s - 1).multipliedReportingOverflow(by: st)
      let (sum, o2) = last.addingReportingOverflow(m)
      guard !o1, !o2 else { throw bad("view \(t.shape) / \(t.strides) overflows") }
      last = sum
    }
    guard last < t.storageElements else {
      throw bad(
        "view (offset \(t.offset), size \(t.shape), stride \(t.strides)) reaches element \(last) "
          + "of a \(t.storageElements)-element storage")
    }
  }

  static func keyString(_ v: PickleValue) -> String? {
    switch v {
    case .string(let s): return s
    case .int(let i): return String(i)
    default: return nil
    }
  }

  /// Tensors under `value`, keyed by their dotted path through dicts and lists.
  static func collect(_ value: PickleValue, prefix: String, into out: inout [String: TorchTensorRef]) {
    switch value {
    case .tensor(let t): out[prefix] = t
    case .dict(let entries):
      for e in entries {
        guard let k = keyString(e.key) else { continue }
        collect(e.value, prefix: prefix.isEmpty ? k : prefix + "." + k, into: &out)
      }
    case .list(let items), .tuple(let items):
      for (i, v) in items.enumerated() { collect(v, prefix: prefix.isEmpty ? "\(i)" : prefix + ".\(i)", into: &out) }
    default: break
    }
  }

  static func sniff(_ path: String) throws -> [UInt8] {
    let (fd, _) = try openRegularFile(path)
    defer { close(fd) }
    var head = [UInt8](repeating: 0, count: 16)
    var got = 0
    while got < head.count {
      let n = head.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, $0.count - got) }
      if n < 0 && errno == EINTR { continue }
      if n <= 0 { break }
      got += n
    }
    return Array(head[..<got])
  }
}

/// A SwissArmyTransformer checkpoint folder: `latest` holds an iteration number or `release`, and
/// `<iter>/mp_rank_00_model_states.pt` the `torch.save`d dict whose `module` entry is the state dict
/// (`sat/training/model_io.py` `get_checkpoint_name`, `load_checkpoint`).
///
/// As a `TensorSource` it exposes the UNet: keys under `model.diffusion_model.`, with that prefix
/// stripped. Everything else in `module` is listed in `otherPrefixes` and otherwise ignored.
public struct SATCheckpoint: TensorSource {
  public static let unetPrefix = "model.diffusion_model."
  public let folder: String
  /// The iteration `latest` named (`release` or a number).
  public let iteration: String
  /// The full `module` state dict, keys unstripped.
  public let module: TorchCheckpoint
  /// Key groups outside the UNet (first dotted component, or the known SAT part) and their tensor counts.
  public let otherPrefixes: [String: Int]
  public let keys: [String]
  private let unet: PrefixedTensorSource

  public init(folder: String) throws {
    self.folder = folder
    let latestPath = (folder as NSString).appendingPathComponent("latest")
    guard let text = try? String(contentsOfFile: latestPath, encoding: .utf8) else {
      throw ModelIOError.unreadable(path: latestPath, reason: "a SAT checkpoint folder needs a 'latest' file")
    }
    let it = text.trimmingCharacters(in: .whitespacesAndNewlines)
    guard
      it == "release" || (!it.isEmpty && it.count <= 18 && it.allSatisfy(\.isASCII) && Int(it).map { $0 >= 0 } == true)
    else {
      throw ModelIOError.malformed(
        path: latestPath, tensor: nil, reason: "holds '\(it.prefix(40))', expected an iteration number or 'release'")
    }
    iteration = it
    let pt = ((folder as NSString).appendingPathComponent(it) as NSString)
      .appendingPathComponent("mp_rank_00_model_states.pt")
    guard FileManager.default.fileExists(atPath: pt) else {
      throw ModelIOError.unreadable(path: pt, reason: "'latest' names iteration \(it) but this file is missing")
    }
    module = try TorchCheckpoint(path: pt, select: ["module"])
    unet = PrefixedTensorSource(module, stripping: Self.unetPrefix)
    keys = unet.keys
    var other: [String: Int] = [:]
    for k in module.keys where !k.hasPrefix(Self.unetPrefix) {
      other[KeyTables.sgmSAT.rule(for: k)?.prefix ?? String(k.prefix { $0 != "." }) + ".", default: 0] += 1
    }
    otherPrefixes = other
  }

  public var location: String { module.location }
  public func stored(_ key: String) throws -> StoredTensor { try unet.stored(key) }
  public func info(_ key: String) throws -> TensorInfo { try unet.info(key) }
}
