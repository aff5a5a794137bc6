import Foundation
import Tensor
import XCTest

@testable import ModelIO

/// Paths of the fixtures made by Tests/tools/make_modelio_fixtures.py.
enum Fixture {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/modelio")

  static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

  /// expected.json: per fixture, per tensor, dtype, shape and values as PyTorch wrote them.
  static let expected: [String: Any] = {
    guard let data = FileManager.default.contents(atPath: path("expected.json")),
      let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    else { return [:] }
    return json
  }()

  struct Tensor {
    var dtype: String
    var shape: [Int]
    var values: [Double]
  }

  static func tensors(_ group: String) -> [String: Tensor] {
    guard let g = expected[group] as? [String: Any] else { return [:] }
    var out: [String: Tensor] = [:]
    for (k, v) in g {
      guard let o = v as? [String: Any] else { continue }
      out[k] = Tensor(
        dtype: o["dtype"] as? String ?? "", shape: o["shape"] as? [Int] ?? [],
        values: (o["values"] as? [Any] ?? []).map { ($0 as? NSNumber)?.doubleValue ?? .nan })
    }
    return out
  }

  /// A scratch folder removed at the end of the test.
  static func scratch(_ test: XCTestCase) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("modelio-\(UUID().uuidString)").path
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
    return dir
  }
}

/// Asserts that `body` throws a ModelIOError whose description contains every fragment.
func assertModelIOError(
  _ fragments: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void
) {
  do {
    try body()
    XCTFail("expected an error mentioning \(fragments)", file: file, line: line)
  } catch let e as ModelIOError {
    let text = e.description
    for f in fragments where !text.contains(f) {
      XCTFail("error '\(text)' does not mention '\(f)'", file: file, line: line)
    }
  } catch {
    XCTFail("expected ModelIOError, got \(error)", file: file, line: line)
  }
}

extension StoredTensor {
  /// Element values as doubles, for any dtype (test helper; f16/bf16 widened through Tensor's code).
  func doubles() throws -> [Double] {
    let n = elementCount
    let p = storage.base + offset
    switch dtype {
    case .f32, .f16, .bf16, .f64: return try toFloat32().data.map(Double.init)
    case .i64: return (0..<n).map { Double(p.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self)) }
    case .i32: return (0..<n).map { Double(p.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
    case .i16: return (0..<n).map { Double(p.loadUnaligned(fromByteOffset: $0 * 2, as: Int16.self)) }
    case .i8: return (0..<n).map { Double(p.load(fromByteOffset: $0, as: Int8.self)) }
    case .u8, .bool: return (0..<n).map { Double(p.load(fromByteOffset: $0, as: UInt8.self)) }
    }
  }
}

/// Checks every tensor of `source` against what PyTorch recorded in expected.json.
func assertMatchesExpected(
  _ source: any TensorSource, _ expected: [String: Fixture.Tensor], file: StaticString = #filePath,
  line: UInt = #line
) throws {
  XCTAssertFalse(expected.isEmpty, "expected.json has no entries", file: file, line: line)
  XCTAssertEqual(source.keys, expected.keys.sorted(), file: file, line: line)
  for (k, e) in expected {
    let t = try source.stored(k)
    XCTAssertEqual(t.dtype.rawValue, e.dtype, k, file: file, line: line)
    XCTAssertEqual(t.shape, e.shape, k, file: file, line: line)
    // Compared as Float: every fixture value is a float32 (or narrower) number, and Foundation's JSON
    // parser does not always return the nearest double.
    XCTAssertEqual(try t.doubles().map { Float($0) }, e.values.map { Float($0) }, k, file: file, line: line)
    let info = try source.info(k)
    XCTAssertEqual(info.shape, e.shape, k, file: file, line: line)
  }
}
