import Foundation
import ModelIO
import Tensor
import XCTest

@testable import Models

// The one checkpoint-key checker every loader uses (T5, UNet, VAE; their own tests cover the call sites).

final class KeyCheckTests: XCTestCase {
  func source(_ shapes: [String: [Int]], location: String = "test.safetensors") throws -> MemoryTensorSource {
    var tensors: [String: StoredTensor] = [:]
    for (key, shape) in shapes { tensors[key] = try StoredTensor(Tensor(zeros: shape)) }
    return MemoryTensorSource(tensors, location: location)
  }

  func testExactFitPasses() throws {
    let expected = ["a.weight": [2, 3], "a.bias": [2]]
    XCTAssertNil(KeyCheck.mismatch(expected: expected, source: try source(expected), model: "m"))
    XCTAssertNoThrow(try KeyCheck.verify(expected: expected, source: try source(expected), model: "m"))
  }

  func testListsFirstFewOfEachKindWithCountsAndTheFile() throws {
    var expected: [String: [Int]] = [:]
    for i in 0..<8 { expected["missing.\(i)"] = [1] }
    for i in 0..<7 { expected["shaped.\(i)"] = [4, 4] }
    expected["fine"] = [3]
    var present: [String: [Int]] = ["fine": [3]]
    for i in 0..<7 { present["shaped.\(i)"] = [4, 5] }
    for i in 0..<6 { present["extra.\(i)"] = [2] }
    let src = try source(present, location: "/models/vae.safetensors")
    XCTAssertThrowsError(try KeyCheck.verify(expected: expected, source: src, model: "VAE (sdxl)")) { error in
      guard let e = error as? WeightMismatchError else { return XCTFail("\(error)") }
      XCTAssertEqual(e.missing, (0..<8).map { "missing.\($0)" })
      XCTAssertEqual(e.unexpected, (0..<6).map { "extra.\($0)" })
      XCTAssertEqual(e.misShaped.map(\.key), (0..<7).map { "shaped.\($0)" })
      XCTAssertEqual(e.misShaped.first, .init(key: "shaped.0", expected: [4, 4], found: [4, 5]))
      XCTAssertTrue(e.badDType.isEmpty)
      let text = e.description
      XCTAssertTrue(text.hasPrefix("/models/vae.safetensors: the tensors do not fit VAE (sdxl): "), text)
      XCTAssertTrue(
        text.contains("8 missing (missing.0, missing.1, missing.2, missing.3, missing.4, … (3 more))"), text)
      XCTAssertTrue(text.contains("6 unexpected (extra.0, "), text)
      XCTAssertTrue(text.contains("extra.4, … (1 more))"), text)
      XCTAssertTrue(text.contains("7 mis-shaped (shaped.0: expected [4, 4], found [4, 5], "), text)
      XCTAssertFalse(text.contains("missing.5"), "only the first few are spelled out")
    }
  }

  func testIgnoredKeysMayBePresent() throws {
    let src = try source(["a": [1], "decoder.x": [2]])
    XCTAssertNoThrow(try KeyCheck.verify(expected: ["a": [1]], source: src, model: "m") { $0.hasPrefix("decoder.") })
    XCTAssertEqual(KeyCheck.mismatch(expected: ["a": [1]], source: src, model: "m")?.unexpected, ["decoder.x"])
  }

  func testIntegerTensorsAreReported() throws {
    let source = MemoryTensorSource(
      [
        "a": try StoredTensor(
          dtype: .i32, shape: [2],
          storage: [UInt8](repeating: 0, count: 8).withUnsafeBytes { ByteStorage(copying: $0) })
      ],
      location: "ints.safetensors")
    let r = try XCTUnwrap(KeyCheck.mismatch(expected: ["a": [2]], source: source, model: "test"))
    XCTAssertEqual(r.badDType, ["a": .i32])
    XCTAssertTrue(r.description.contains("1 not floating point (a is I32)"), r.description)
    XCTAssertThrowsError(try KeyCheck.verify(expected: ["a": [2]], source: source, model: "t"))
    XCTAssertNoThrow(try KeyCheck.verify(expected: [:], source: source, model: "t", ignoring: { $0 == "a" }))
  }
}
