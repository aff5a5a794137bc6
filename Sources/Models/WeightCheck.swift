import ModelIO
import Tensor

/// What is wrong between a checkpoint and the tensors a model expects: missing, unexpected and
/// mis-shaped keys, and tensors of a dtype that cannot be widened to float32. Thrown by
/// `WeightCheck.verify`; the message names the file and lists the first few of each kind with counts.
public struct WeightMismatch: Error, Equatable, CustomStringConvertible {
  public struct Misshaped: Equatable, Sendable {
    public let key: String
    public let expected: [Int]
    public let found: [Int]
  }

  /// The checkpoint (file or folder) that was checked.
  public let location: String
  /// What the checkpoint was checked against, e.g. "T5 encoder (d_model 4096, 24 layers)".
  public let model: String
  public var missing: [String] = []
  public var unexpected: [String] = []
  public var misshaped: [Misshaped] = []
  /// Keys whose dtype is not a floating-point type, with that dtype.
  public var badDType: [String: DType] = [:]

  public var isEmpty: Bool { missing.isEmpty && unexpected.isEmpty && misshaped.isEmpty && badDType.isEmpty }

  /// How many entries of each list the message shows.
  public static let shown = 5

  public var description: String {
    func list(_ items: [String]) -> String {
      let head = items.prefix(Self.shown).joined(separator: ", ")
      return items.count > Self.shown ? head + ", … (\(items.count - Self.shown) more)" : head
    }
    func shape(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }
    var lines = ["\(location): the weights do not fit \(model):"]
    if !missing.isEmpty { lines.append("  \(missing.count) missing: \(list(missing))") }
    if !misshaped.isEmpty {
      lines.append(
        "  \(misshaped.count) mis-shaped: "
          + list(misshaped.map { "\($0.key) expected \(shape($0.expected)) found \(shape($0.found))" }))
    }
    if !badDType.isEmpty {
      lines.append(
        "  \(badDType.count) not floating point: "
          + list(badDType.sorted { $0.key < $1.key }.map { "\($0.key) is \($0.value.rawValue)" }))
    }
    if !unexpected.isEmpty { lines.append("  \(unexpected.count) unexpected: \(list(unexpected))") }
    return lines.joined(separator: "\n")
  }
}

/// Compares a `TensorSource` with the `[key: shape]` table a model expects (generic: used by every
/// network loader).
public enum WeightCheck {
  /// The mismatch report (empty when everything fits). Keys for which `ignoring` is true may be
  /// present without being expected (the decoder half of a full T5 checkpoint, a tied duplicate).
  public static func report(
    _ source: any TensorSource, expected: [String: [Int]], model: String,
    ignoring: (String) -> Bool = { _ in false }
  ) -> WeightMismatch {
    var r = WeightMismatch(location: source.location, model: model)
    let present = source.keys
    let presentSet = Set(present)
    r.missing = expected.keys.filter { !presentSet.contains($0) }.sorted()
    r.unexpected = present.filter { expected[$0] == nil && !ignoring($0) }
    for key in present {
      guard let want = expected[key], let stored = try? source.stored(key) else { continue }
      if stored.shape != want { r.misshaped.append(.init(key: key, expected: want, found: stored.shape)) }
      if !stored.dtype.isFloatingPoint { r.badDType[key] = stored.dtype }
    }
    r.misshaped.sort { $0.key < $1.key }
    return r
  }

  /// Throws the `WeightMismatch` unless every expected key is present with its shape and a float dtype
  /// and nothing else is there.
  public static func verify(
    _ source: any TensorSource, expected: [String: [Int]], model: String,
    ignoring: (String) -> Bool = { _ in false }
  ) throws {
    let r = report(source, expected: expected, model: model, ignoring: ignoring)
    if !r.isEmpty { throw r }
  }
}
