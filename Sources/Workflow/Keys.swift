import Foundation

/// What went into a node's key, kept so `plan` can say which part changed.
public struct KeyParts: Sendable, Equatable {
  public var type: String
  public var version: Int
  /// Canonical JSON of each parameter (model and file parameters are represented by their digests below).
  public var params: [String: String]
  /// Per input port: "type:digest" of the value it receives.
  public var inputs: [String: String]
  /// Per model/file parameter: the digest over the files it names (relative name + content digest each).
  public var files: [String: String]

  /// The key: SHA-256 over a canonical text of the parts, in sorted order. The node id is not part of it.
  public var key: String {
    var text = "cogflow-key-v1\ntype=\(type)\nversion=\(version)\n"
    for name in params.keys.sorted() { text += "param \(name)=\(params[name]!)\n" }
    for port in inputs.keys.sorted() { text += "input \(port)=\(inputs[port]!)\n" }
    for name in files.keys.sorted() { text += "file \(name)=\(files[name]!)\n" }
    return SHA256.hash(text)
  }
}

extension ResolvedModel {
  /// The model's digest as keys and provenance records hold it: SHA-256 over each file's path relative to the
  /// model folder (empty for a single file) and that file's content digest, in sorted file order.
  public func digest(fileDigest: (String) throws -> String) throws -> String {
    var hasher = SHA256()
    for file in files {
      let relative = file.hasPrefix(path + "/") ? String(file.dropFirst(path.count + 1)) : ""
      hasher.update("\(relative)\u{0}\(try fileDigest(file))\n")
    }
    return hasher.finalizeHex()
  }
}

/// A node output as the engine tracks it: always its record (digest, type, size), bytes when in memory.
struct OutputRef: Sendable {
  var record: OutputRecord
  var data: Data?
}

enum KeyBuilder {
  /// The key parts of `node` given the records of its inputs. File digests come from the cache's memo
  /// (a stat per file when nothing changed) or are computed once.
  static func parts(
    for node: ResolvedNode, inputs: [String: OutputRecord], fileDigest: (String) throws -> String
  ) throws -> KeyParts {
    var params: [String: String] = [:]
    var files: [String: String] = [:]
    for param in node.spec.params {
      switch param.type {
      case .model:
        guard let model = node.params.models[param.name] else { continue }
        files[param.name] = try model.digest(fileDigest: fileDigest)
      case .file:
        guard let path = node.params.files[param.name] else { continue }
        files[param.name] = try fileDigest(path)
      default:
        guard param.affectsKey else { continue }
        if let value = node.params.values[param.name] { params[param.name] = value.canonicalJSON }
      }
    }
    var inputDigests: [String: String] = [:]
    for (port, record) in inputs { inputDigests[port] = "\(record.type):\(record.digest)" }
    return KeyParts(
      type: node.type, version: node.spec.version, params: params, inputs: inputDigests, files: files)
  }

  /// Human-readable differences between a previous run's parts and now, for `plan`.
  static func differences(old: CacheEntry, new: KeyParts) -> [String] {
    var out: [String] = []
    if old.version != new.version { out.append("implementation version \(old.version) → \(new.version)") }
    for name in Set(old.params.keys).union(new.params.keys).sorted() where old.params[name] != new.params[name] {
      out.append("parameter \(name) \(old.params[name] ?? "unset") → \(new.params[name] ?? "unset")")
    }
    for port in Set(old.inputs.keys).union(new.inputs.keys).sorted() where old.inputs[port] != new.inputs[port] {
      out.append("input \(port) changed")
    }
    for name in Set(old.files.keys).union(new.files.keys).sorted() where old.files[name] != new.files[name] {
      out.append("file(s) of \(name) changed")
    }
    return out
  }
}
