import ModelIO
import Tensor

/// A checkpoint whose tensors do not fit the network built from a configuration: the keys the
/// configuration needs but the file lacks, the keys the file holds that nothing uses, and the keys
/// present with another shape. Reported all at once so that one run shows everything wrong.
public struct WeightMismatchError: Error, Equatable, CustomStringConvertible {
  /// One tensor present under the expected name but with another shape.
  public struct MisShaped: Equatable, Sendable {
    public let key: String
    public let expected: [Int]
    public let found: [Int]
  }

  /// The file or folder the tensors came from.
  public let location: String
  /// What was being loaded, e.g. `UNet (cogview3-base)`.
  public let model: String
  public let missing: [String]
  public let unexpected: [String]
  public let misShaped: [MisShaped]

  /// How many of each kind the message spells out; the counts are always given in full.
  public static let listed = 5

  public var description: String {
    func shape(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }
    func list(_ items: [String]) -> String {
      let head = items.prefix(Self.listed).joined(separator: ", ")
      return items.count > Self.listed ? head + ", …" : head
    }
    var parts: [String] = []
    if !missing.isEmpty { parts.append("\(missing.count) missing (\(list(missing)))") }
    if !unexpected.isEmpty { parts.append("\(unexpected.count) unexpected (\(list(unexpected)))") }
    if !misShaped.isEmpty {
      let items = misShaped.map { "\($0.key): expected \(shape($0.expected)), found \(shape($0.found))" }
      parts.append("\(misShaped.count) mis-shaped (\(list(items)))")
    }
    return "\(location): the tensors do not fit \(model): " + parts.joined(separator: "; ")
      + ". Check that the file and the model configuration (preset) belong together."
  }
}

/// Compares the tensors a configuration expects (`[key: shape]`) with what a `TensorSource` holds.
public enum KeyCheck {
  /// The mismatch between `expected` and `source`, or nil when every key is present with its shape
  /// and the source holds nothing else. Keys are reported sorted.
  public static func mismatch(
    expected: [String: [Int]], source: any TensorSource, model: String
  ) -> WeightMismatchError? {
    let present = Set(source.keys)
    var missing: [String] = []
    var misShaped: [WeightMismatchError.MisShaped] = []
    for key in expected.keys.sorted() {
      guard present.contains(key), let stored = try? source.stored(key) else {
        missing.append(key)
        continue
      }
      if let shape = expected[key], stored.shape != shape {
        misShaped.append(.init(key: key, expected: shape, found: stored.shape))
      }
    }
    let unexpected = present.subtracting(expected.keys).sorted()
    if missing.isEmpty, unexpected.isEmpty, misShaped.isEmpty { return nil }
    return WeightMismatchError(
      location: source.location, model: model, missing: missing, unexpected: unexpected,
      misShaped: misShaped)
  }

  /// Throws `WeightMismatchError` unless `source` holds exactly the `expected` tensors.
  public static func verify(expected: [String: [Int]], source: any TensorSource, model: String) throws {
    if let error = mismatch(expected: expected, source: source, model: model) { throw error }
  }
}
