import Foundation
import XCTest

@testable import Tensor

/// The kernels (fast and naive) against PyTorch's outputs in Tests/Fixtures/tensor/golden.json
/// (made by Tests/tools/make_tensor_golden.py; provenance in the fixture's README and `meta`).
final class GoldenTests: XCTestCase {
  struct Fixture: Decodable {
    struct Array: Decodable {
      var shape: [Int]
      var data: [Float]
      func tensor() throws -> Tensor { try Tensor(shape: shape, data: data) }
    }
    struct Case: Decodable {
      var name: String
      var op: String
      var params: [String: Double]
      var inputs: [String: Array]
      var output: Array
      var tol: Float
    }
    var meta: [String: JSONValue]
    var cases: [Case]
  }

  enum JSONValue: Decodable {
    case number(Double)
    case string(String)
    init(from decoder: Decoder) throws {
      let c = try decoder.singleValueContainer()
      if let d = try? c.decode(Double.self) { self = .number(d) } else { self = .string(try c.decode(String.self)) }
    }
  }

  static func load() throws -> Fixture {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("Fixtures/tensor/golden.json")
    return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
  }

  /// Evaluates one case with `Ops` (fast) or `Naive`.
  func run(_ c: Fixture.Case, naive: Bool) throws -> Tensor? {
    let x = try c.inputs["x"]?.tensor()
    let p = c.params
    func int(_ k: String) -> Int { Int(p[k] ?? 0) }
    switch c.op {
    case "resizeBilinear":
      return naive
        ? try Naive.resizeBilinear(x!, height: int("height"), width: int("width"))
        : try Ops.resizeBilinear(x!, height: int("height"), width: int("width"))
    case "upsampleNearest2x": return naive ? try Naive.upsampleNearest2x(x!) : try Ops.upsampleNearest2x(x!)
    case "gelu": return naive ? Naive.gelu(x!) : Ops.gelu(x!)
    case "geluTanh": return naive ? Naive.geluTanh(x!) : Ops.geluTanh(x!)
    case "silu": return naive ? Naive.silu(x!) : Ops.silu(x!)
    case "geglu": return naive ? try Naive.geglu(x!) : try Ops.geglu(x!)
    case "softmax": return naive ? Naive.softmax(x!) : Ops.softmax(x!)
    case "groupNorm":
      let w = try c.inputs["weight"]?.tensor()
      let b = try c.inputs["bias"]?.tensor()
      let eps = Float(p["eps"]!)
      return naive
        ? try Naive.groupNorm(x!, groups: int("groups"), weight: w, bias: b, eps: eps)
        : try Ops.groupNorm(x!, groups: int("groups"), weight: w, bias: b, eps: eps)
    case "layerNorm":
      let w = try c.inputs["weight"]?.tensor()
      let b = try c.inputs["bias"]?.tensor()
      let eps = Float(p["eps"]!)
      return naive
        ? try Naive.layerNorm(x!, weight: w, bias: b, eps: eps) : try Ops.layerNorm(x!, weight: w, bias: b, eps: eps)
    case "rmsNorm":
      let w = try c.inputs["weight"]?.tensor()
      let eps = Float(p["eps"]!)
      return naive ? try Naive.rmsNorm(x!, weight: w, eps: eps) : try Ops.rmsNorm(x!, weight: w, eps: eps)
    case "conv2d":
      let w = try c.inputs["weight"]!.tensor()
      let b = try c.inputs["bias"]?.tensor()
      let pad = Padding2D(top: int("top"), bottom: int("bottom"), left: int("left"), right: int("right"))
      return naive
        ? try Naive.conv2d(x!, weight: w, bias: b, stride: int("stride"), padding: pad)
        : try Ops.conv2d(x!, weight: w, bias: b, stride: int("stride"), padding: pad)
    case "attention":
      let q = try c.inputs["q"]!.tensor()
      let k = try c.inputs["k"]!.tensor()
      let v = try c.inputs["v"]!.tensor()
      let bias = try c.inputs["bias"]?.tensor()
      return naive
        ? try Naive.attention(q: q, k: k, v: v, heads: int("heads"), bias: bias)
        : try Ops.attention(q: q, k: k, v: v, heads: int("heads"), bias: bias, queryChunk: 3)
    case "timestep":
      return naive ? nil : Embeddings.timestep(try c.inputs["t"]!.tensor().data, dim: int("dim"))
    case "guidance":
      return naive ? nil : Embeddings.guidance(try c.inputs["w"]!.tensor().data, dim: int("dim"))
    default:
      XCTFail("unknown op \(c.op) in golden.json")
      return nil
    }
  }

  func testKernelsMatchPyTorch() throws {
    let fixture = try Self.load()
    XCTAssertGreaterThanOrEqual(fixture.cases.count, 25)
    var checked = 0
    for c in fixture.cases {
      let expected = try c.output.tensor()
      for naive in [false, true] {
        guard let got = try run(c, naive: naive) else { continue }
        XCTAssertEqual(got.shape, expected.shape, c.name)
        guard got.shape == expected.shape else { continue }
        var worst: Float = 0
        for i in 0..<got.count {
          let e = abs(got.data[i] - expected.data[i]) / max(1, abs(expected.data[i]))
          worst = max(worst, e.isNaN ? .infinity : e)
        }
        XCTAssertLessThanOrEqual(worst, c.tol, "\(c.name) (\(naive ? "naive" : "fast")): max error \(worst)")
        checked += 1
      }
    }
    XCTAssertGreaterThanOrEqual(checked, 45)
  }

  /// The golden values quoted in reference/cogview3-official.md (numpy float32), as a second anchor.
  func testEmbeddingValuesQuotedInTheReference() {
    let ts = Embeddings.timestep([999], dim: 320)
    XCTAssertEqual(ts.data[0], 0.9996499, accuracy: 2e-6)
    XCTAssertEqual(ts.data[1], 0.8026775, accuracy: 2e-6)
    let sizes = Embeddings.timestep([512], dim: 256)
    XCTAssertEqual(sizes.data[0], -0.9968334, accuracy: 2e-6)
    XCTAssertEqual(sizes.data[1], 0.48082364, accuracy: 2e-6)
    // PyTorch gives −0.9174577 here, numpy −0.91744554 (reference §2.2): rounding of t·f.
    XCTAssertEqual(sizes.data[2], -0.9174577, accuracy: 2e-5)
    let g = Embeddings.guidance([7.5], dim: 512)
    XCTAssertEqual(g.shape, [1, 512])
    XCTAssertEqual(g.data[0], -0.8512359, accuracy: 1e-3)
    XCTAssertEqual(g.data[1], 0.91131836, accuracy: 1e-3)
    XCTAssertEqual(g.data[256], -0.52478325, accuracy: 1e-3)
    XCTAssertEqual(g.data[257], -0.41170242, accuracy: 1e-3)
  }
}
