import ModelIO
import Tensor

/// A checkpoint whose tensors do not fit the network built from a configuration: the keys the
/// configuration needs but the file lacks, the keys the file holds that nothing uses, the keys present
/// with another shape, and expected tensors whose dtype cannot be widened to float32. Reported all at
/// once so that one run shows everything wrong; the message names the file and lists the first few of
/// each kind with the counts. Thrown by every network loader (T5, UNet, VAE) through `KeyCheck`.
public struct WeightMismatchError: Error, Equatable, CustomStringConvertible {
  /// One tensor present under the expected name but with another shape.
  public struct MisShaped: Equatable, Sendable {
    public let key: String
    public let expected: [Int]
    public let found: [Int]

    public init(key: String, expected: [Int], found: [Int]) {
      self.key = key
      self.expected = expected
      self.found = found
    }
  }

  /// The file or folder the tensors came from.
  public let location: String
  /// What was being loaded, e.g. `UNet (cogview3-base)`.
  public let model: String
  /// Sorted.
  public var missing: [String] = []
  /// Sorted.
  public var unexpected: [String] = []
  /// Sorted by key.
  public var misShaped: [MisShaped] = []
  /// Expected keys whose dtype is not a floating-point type, with that dtype.
  public var badDType: [String: DType] = [:]

  public var isEmpty: Bool { missing.isEmpty && unexpected.isEmpty && misShaped.isEmpty && badDType.isEmpty }

  /// How many of each kind the message spells out; the counts are always given in full.
  public static let listed = 5

  public var description: String {
    func shape(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }
    func list(_ items: [String]) -> String {
      let head = items.prefix(Self.listed).joined(separator: ", ")
      return items.count > Self.listed ? head + ", … (\(items.count - Self.listed) more)" : head
    }
    var parts: [String] = []
    if !missing.isEmpty { parts.append("\(missing.count) missing (\(list(missing)))") }
    if !unexpected.isEmpty { parts.append("\(unexpected.count) unexpected (\(list(unexpected)))") }
    if !misShaped.isEmpty {
      let items = misShaped.map { "\($0.key): expected \(shape($0.expected)), found \(shape($0.found))" }
      parts.append("\(misShaped.count) mis-shaped (\(list(items)))")
    }
    if !badDType.isEmpty {
      let items = badDType.sorted { $0.key < $1.key }.map { "\($0.key) is \($0.value.rawValue)" }
      parts.append("\(badDType.count) not floating point (\(list(items)))")
    }
    return "\(location): the tensors do not fit \(model): " + parts.joined(separator: "; ")
      + ". Check that the file and the model configuration (preset) belong together."
  }
}

/// Compares the tensors a configuration expects (`[key: shape]`) with what a `TensorSource` holds.
public enum KeyCheck {
  /// The mismatch between `expected` and `source`, or nil when every key is present with its shape and a
  /// floating-point dtype and the source holds nothing else. Keys for which `ignoring` is true may be
  /// present without being expected (the decoder half of a full T5 checkpoint, a tied duplicate).
  public static func mismatch(
    expected: [String: [Int]], source: any TensorSource, model: String,
    ignoring: (String) -> Bool = { _ in false }
  ) -> WeightMismatchError? {
    let present = Set(source.keys)
    var r = WeightMismatchError(location: source.location, model: model)
    for key in expected.keys.sorted() {
      guard present.contains(key), let stored = try? source.stored(key) else {
        r.missing.append(key)
        continue
      }
      if let shape = expected[key], stored.shape != shape {
        r.misShaped.append(.init(key: key, expected: shape, found: stored.shape))
      }
      if !stored.dtype.isFloatingPoint { r.badDType[key] = stored.dtype }
    }
    r.unexpected = present.filter { expected[$0] == nil && !ignoring($0) }.sorted()
    return r.isEmpty ? nil : r
  }

  /// Throws `WeightMismatchError` unless `source` holds exactly the `expected` tensors (up to `ignoring`).
  public static func verify(
    expected: [String: [Int]], source: any TensorSource, model: String,
    ignoring: (String) -> Bool = { _ in false }
  ) throws {
    if let error = mismatch(expected: expected, source: source, model: model, ignoring: ignoring) { throw error }
  }
}
