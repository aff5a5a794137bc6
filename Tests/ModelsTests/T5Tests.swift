import Foundation
import ModelIO
import Tensor
import XCTest

@testable import Models

/// The T5 encoder against transformers' T5EncoderModel (Tests/Fixtures/t5, made by
/// Tests/tools/make_t5_fixtures.py; tolerances: relative L2 ≤ 1e-5 per block, ≤ 1e-4 per model).
final class T5Tests: XCTestCase {
  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/t5")

  static func file(_ path: String) throws -> SafetensorsFile {
    try SafetensorsFile(path: fixtures.appendingPathComponent(path).path)
  }

  static func int64s(_ source: any TensorSource, _ key: String) throws -> [Int] {
    let t = try source.stored(key)
    XCTAssertEqual(t.dtype, .i64)
    return (0..<t.elementCount).map { Int(t.bytes.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self)) }
  }

  func testRelativePositionBucketsMatchTransformers() throws {
    let f = try Self.file("buckets.safetensors")
    let rel = try Self.int64s(f, "relative_position")
    let expected = try Self.int64s(f, "bucket")
    let config = T5Config.xxl
    XCTAssertEqual(rel.count, 1201)
    XCTAssertEqual(rel.map { config.relativePositionBucket($0) }, expected)
    XCTAssertEqual(Set(expected).count, 31, "every bucket but 16 (positive distance 0) is reached")
  }

  func smallEncoder(_ dtype: String, keepWidened: Bool = false) throws -> T5Encoder {
    let config = try T5Config(configFile: Self.fixtures.appendingPathComponent("small/config.json").path)
    return try T5Encoder(
      config: config, weights: Self.file("small/model-\(dtype).safetensors"), keepWidened: keepWidened)
  }

  func checkSmall(_ dtype: String) throws {
    let encoder = try smallEncoder(dtype)
    XCTAssertEqual(encoder.config.dModel, 64)
    XCTAssertEqual(encoder.config.numLayers, 3)
    let expected = try Self.file("small/expected.safetensors")
    let flat = try Self.int64s(expected, "input_ids")
    let ids = [Array(flat[0..<150]), Array(flat[150..<300])]
    let bias = try encoder.positionBias(length: 150)
    // Each block on the reference's own input.
    for i in 0..<3 {
      let input = try expected.tensor("\(dtype).block\(i).in")
      let out = try encoder.block(i, input, bias: bias)
      let err = relativeL2(out, try expected.tensor("\(dtype).block\(i).out"))
      XCTAssertLessThanOrEqual(err, 1e-5, "\(dtype) block \(i)")
    }
    XCTAssertLessThanOrEqual(
      relativeL2(try encoder.embed(ids), try expected.tensor("\(dtype).block0.in")), 0, "embedding is a copy")
    let out = try encoder.encode(ids)
    XCTAssertEqual(out.shape, [2, 150, 64])
    let err = relativeL2(out, try expected.tensor("\(dtype).last_hidden_state"))
    XCTAssertLessThanOrEqual(err, 1e-4, "\(dtype) whole encoder")
    // A batch of one gives the same rows as the batch of two.
    let single = try encoder.encode(ids[1])
    XCTAssertLessThanOrEqual(
      relativeL2(single, try Tensor(shape: [1, 150, 64], data: Array(out.data[(150 * 64)...]))), 1e-6)
  }

  func testSmallEncoderFloat32() throws { try checkSmall("f32") }
  func testSmallEncoderBFloat16Weights() throws { try checkSmall("bf16") }

  func testKeepWidenedGivesTheSameOutput() throws {
    let ids = [Array(0..<40).map { ($0 * 7) % 96 }]
    let a = try smallEncoder("bf16").encode(ids)
    let kept = try smallEncoder("bf16", keepWidened: true)
    let b = try kept.encode(ids)
    let c = try kept.encode(ids)
    XCTAssertEqual(a.data, b.data)
    XCTAssertEqual(b.data, c.data)
  }

  func testFullWidthBlock() throws {
    let note = try XCTUnwrap(
      JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("fixtures.json")))
        as? [String: Any])
    let full = try XCTUnwrap(note["fullwidth"] as? [String: Any])
    let specs = try XCTUnwrap(full["weights"] as? [[String: Any]])
    var tensors: [String: StoredTensor] = [:]
    for s in specs {
      let key = try XCTUnwrap(s["key"] as? String)
      tensors[key] = try T5FixtureWeights.bf16(
        shape: try XCTUnwrap(s["shape"] as? [Int]), stream: try XCTUnwrap(s["stream"] as? Int),
        scaleLog2: try XCTUnwrap(s["scale_log2"] as? Int), offset: Float(try XCTUnwrap(s["offset"] as? Double)))
    }
    // The Swift generator reproduces the Python one.
    let spots = try XCTUnwrap(full["spot_values"] as? [String: [Double]])
    XCTAssertEqual(spots.count, 3)
    for (key, values) in spots {
      let t = try XCTUnwrap(tensors[key])
      let head = try StoredTensor(dtype: .bf16, shape: [5], storage: t.storage, offset: t.offset).toFloat32()
      XCTAssertEqual(head.data, values.map { Float($0) }, key)
    }
    tensors["shared.weight"] = try StoredTensor(Tensor(zeros: [8, 4096]), as: .bf16)
    let config = T5Config(vocabSize: 8, numLayers: 1)
    let encoder = try T5Encoder(config: config, weights: MemoryTensorSource(tensors, location: "generated"))
    let expected = try Self.file("fullwidth/expected.safetensors")
    let x = try expected.tensor("input")
    XCTAssertEqual(x.shape, [1, 16, 4096])
    let y = try encoder.block(0, x, bias: encoder.positionBias(length: 16))
    XCTAssertLessThanOrEqual(relativeL2(y, try expected.tensor("block0.out")), 1e-5, "4096-wide block")
    let z = try encoder.finalNorm(y)
    XCTAssertLessThanOrEqual(relativeL2(z, try expected.tensor("last_hidden_state")), 1e-5, "final norm")
  }

  func testConfigAndCounts() throws {
    let xxl = T5Config.xxl
    XCTAssertEqual(xxl.innerDim, 4096)
    // 24 × (4·4096² + 3·4096·10240 + 2·4096) + 32128·4096 + 32·64 + 4096
    XCTAssertEqual(xxl.parameterCount, 4_762_310_656)
    XCTAssertEqual(xxl.expectedWeights().count, 24 * 9 + 3)
    let small = T5Config(vocabSize: 10, dModel: 8, dKV: 2, numHeads: 4, dFF: 6, numLayers: 1)
    // 2·T·(4·8·8 + 3·8·6) + 4·T²·8 at T = 3
    XCTAssertEqual(small.flops(tokens: 3), 2 * 3 * (256 + 144) + 4 * 9 * 8)
    XCTAssertThrowsError(try T5Config(configFile: "/nonexistent/config.json")) {
      XCTAssertTrue("\($0)".contains("/nonexistent/config.json"))
    }
  }

  func testBadCheckpointListsKeys() throws {
    let good = try Self.file("small/model-f32.safetensors")
    let config = try smallEncoder("f32").config
    var tensors: [String: StoredTensor] = [:]
    for k in good.keys { tensors[k] = try good.stored(k) }
    tensors["encoder.block.1.layer.0.SelfAttention.q.weight"] = nil
    tensors["encoder.block.2.layer.1.DenseReluDense.wo.weight"] = nil
    tensors["encoder.block.0.layer.0.SelfAttention.k.weight"] = try StoredTensor(Tensor(zeros: [64, 63]))
    tensors["encoder.block.9.extra.weight"] = try StoredTensor(Tensor(zeros: [1]))
    tensors["decoder.block.0.layer.0.SelfAttention.q.weight"] = try StoredTensor(Tensor(zeros: [1]))
    XCTAssertThrowsError(
      try T5Encoder(config: config, weights: MemoryTensorSource(tensors, location: "broken.safetensors"))
    ) { error in
      guard let e = error as? WeightMismatchError else { return XCTFail("\(error)") }
      XCTAssertEqual(
        e.missing,
        ["encoder.block.1.layer.0.SelfAttention.q.weight", "encoder.block.2.layer.1.DenseReluDense.wo.weight"])
      XCTAssertEqual(e.unexpected, ["encoder.block.9.extra.weight"], "decoder.* is ignored")
      XCTAssertEqual(
        e.misShaped,
        [.init(key: "encoder.block.0.layer.0.SelfAttention.k.weight", expected: [64, 64], found: [64, 63])])
      let text = e.description
      XCTAssertTrue(text.hasPrefix("broken.safetensors: "), text)
      XCTAssertTrue(text.contains("2 missing"), text)
      XCTAssertTrue(text.contains("expected [64, 64], found [64, 63]"), text)
    }
    // Another config than the file's: every block tensor is mis-shaped, the message stays short.
    var wide = config
    wide.dModel = 128
    XCTAssertThrowsError(try T5Encoder(config: wide, weights: good)) { error in
      guard let e = error as? WeightMismatchError else { return XCTFail("\(error)") }
      XCTAssertEqual(e.misShaped.count, 29, "all but the 32×4 bias table")
      XCTAssertTrue(e.description.contains("(24 more)"), e.description)
      XCTAssertTrue(e.description.contains("model-f32.safetensors"))
    }
  }

  func testBadInputs() throws {
    let encoder = try smallEncoder("f32")
    XCTAssertThrowsError(try encoder.encode([1, 2, 96])) {
      XCTAssertEqual($0 as? T5Error, .tokenOutOfRange(id: 96, vocabSize: 96))
    }
    XCTAssertThrowsError(try encoder.encode([[1, 2], [3]]))
    XCTAssertThrowsError(try encoder.encode([Int]()))
    var relu = encoder.config
    relu.feedForwardProj = "relu"
    XCTAssertThrowsError(try T5Encoder(config: relu, weights: encoder.weights))
  }

}

/// Swift twin of `hash_weights` in Tests/tools/make_t5_fixtures.py: value i of stream s is
/// (m − 128)/128 · 2^scaleLog2 + offset, m = top byte of splitmix64((s << 40) + i), exact in bfloat16.
enum T5FixtureWeights {
  static func value(stream: Int, index: Int, scale: Float, offset: Float) -> Float {
    var z = (UInt64(stream) << 40 &+ UInt64(index)) &* 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    z ^= z >> 31
    return Float(Int(z >> 56) - 128) / 128 * scale + offset
  }

  static func bf16(shape: [Int], stream: Int, scaleLog2: Int, offset: Float) throws -> StoredTensor {
    let n = shape.elementCount
    let p = UnsafeMutablePointer<UInt16>.allocate(capacity: n)
    let scale = Float(sign: .plus, exponent: scaleLog2, significand: 1)
    Parallel.forRange(n, minChunk: 1 << 16) { r in
      for i in r { p[i] = UInt16(value(stream: stream, index: i, scale: scale, offset: offset).bitPattern >> 16) }
    }
    let storage = ByteStorage(borrowing: UnsafeRawPointer(p), byteCount: 2 * n) { p.deallocate() }
    return try StoredTensor(dtype: .bf16, shape: shape, storage: storage)
  }
}

final class T5StreamedLinearTests: XCTestCase {
  /// The block-widened linear against `Ops.linear` on the whole widened matrix (its twin), for every
  /// storage dtype and block sizes that leave a short last block.
  func testStreamedLinearMatchesWholeMatrix() throws {
    let w = try T5FixtureWeights.bf16(shape: [300, 72], stream: 21, scaleLog2: -3, offset: 0).toFloat32()
    let x = try T5FixtureWeights.bf16(shape: [2, 5, 72], stream: 22, scaleLog2: 0, offset: 0).toFloat32()
    for dtype in [DType.f32, .f16, .bf16] {
      let stored = try StoredTensor(w, as: dtype)
      let reference = try Ops.linear(x, weight: stored.toFloat32(), bias: nil)
      for rows in [1, 7, 256, 300, 1000] {
        let y = try T5Encoder.streamedLinear(x, stored, name: "w", blockRows: rows)
        XCTAssertEqual(y.shape, [2, 5, 300])
        XCTAssertLessThanOrEqual(relativeL2(y, reference), 1e-6, "\(dtype) rows \(rows)")
      }
    }
    XCTAssertThrowsError(try T5Encoder.streamedLinear(x, try StoredTensor(w, as: .bf16), name: "w", blockRows: 0))
    XCTAssertThrowsError(
      try T5Encoder.streamedLinear(Tensor(zeros: [3, 71]), try StoredTensor(w, as: .bf16), name: "w"))
  }
}
