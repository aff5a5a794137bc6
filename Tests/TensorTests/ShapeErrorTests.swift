import XCTest

@testable import Tensor

/// Bad shapes and arguments give a `TensorError` naming the operation, from the fast kernels and
/// their naive twins alike; nothing traps.
final class ShapeErrorTests: XCTestCase {
  let a23 = Tensor(zeros: [2, 3])
  let a34 = Tensor(zeros: [3, 4])
  let img = Tensor(zeros: [1, 3, 5, 5])

  func testMatmulAndLinear() {
    for f in [Ops.matmul, Naive.matmul] as [(Tensor, Tensor, Bool, Bool) throws -> Tensor] {
      assertTensorError("matmul") { _ = try f(a23, a23, false, false) }
      assertTensorError("matmul") { _ = try f(Tensor(zeros: [3]), a34, false, false) }
      assertTensorError("matmul") { _ = try f(Tensor(zeros: [2, 2, 3]), Tensor(zeros: [3, 3, 4]), false, false) }
      XCTAssertNoThrow(try f(a23, a23, false, true))
    }
    for f in [Ops.linear, Naive.linear] as [(Tensor, Tensor, Tensor?) throws -> Tensor] {
      assertTensorError("linear") { _ = try f(a23, Tensor(zeros: [3, 2]), nil) }
      assertTensorError("linear") { _ = try f(a23, Tensor(zeros: [4, 3]), Tensor(zeros: [3])) }
      assertTensorError("linear") { _ = try f(a23, Tensor(zeros: [3]), nil) }
    }
  }

  func testConv2d() {
    typealias Conv = (Tensor, Tensor, Tensor?, Int, Padding2D) throws -> Tensor
    let convs: [Conv] = [
      { try Ops.conv2d($0, weight: $1, bias: $2, stride: $3, padding: $4) },
      { try Naive.conv2d($0, weight: $1, bias: $2, stride: $3, padding: $4) },
    ]
    for conv in convs {
      assertTensorError("conv2d") { _ = try conv(self.img, Tensor(zeros: [4, 2, 3, 3]), nil, 1, .uniform(1)) }
      assertTensorError("conv2d") {
        _ = try conv(Tensor(zeros: [3, 5, 5]), Tensor(zeros: [4, 3, 3, 3]), nil, 1, .zero)
      }
      assertTensorError("conv2d") { _ = try conv(self.img, Tensor(zeros: [4, 3, 3, 3]), Tensor(zeros: [3]), 1, .zero) }
      assertTensorError("conv2d") { _ = try conv(self.img, Tensor(zeros: [4, 3, 3, 3]), nil, 0, .zero) }
      assertTensorError("conv2d") { _ = try conv(self.img, Tensor(zeros: [4, 3, 3, 3]), nil, 1, .uniform(-1)) }
      assertTensorError("conv2d") { _ = try conv(self.img, Tensor(zeros: [4, 3, 7, 7]), nil, 1, .zero) }
    }
  }

  func testNorms() {
    let x = Tensor(zeros: [2, 6, 4])
    for f in [Ops.groupNorm, Naive.groupNorm] as [(Tensor, Int, Tensor?, Tensor?, Float) throws -> Tensor] {
      assertTensorError("groupNorm") { _ = try f(x, 4, nil, nil, 1e-5) }
      assertTensorError("groupNorm") { _ = try f(x, 0, nil, nil, 1e-5) }
      assertTensorError("groupNorm") { _ = try f(x, 3, Tensor(zeros: [5]), nil, 1e-5) }
      assertTensorError("groupNorm") { _ = try f(Tensor(zeros: [6]), 3, nil, nil, 1e-5) }
    }
    for f in [Ops.layerNorm, Naive.layerNorm] as [(Tensor, Tensor?, Tensor?, Float) throws -> Tensor] {
      assertTensorError("layerNorm") { _ = try f(x, Tensor(zeros: [6]), nil, 1e-5) }
      assertTensorError("layerNorm") { _ = try f(x, nil, Tensor(zeros: [4, 1]), 1e-5) }
    }
    for f in [Ops.rmsNorm, Naive.rmsNorm] as [(Tensor, Tensor?, Float) throws -> Tensor] {
      assertTensorError("rmsNorm") { _ = try f(x, Tensor(zeros: [3]), 1e-6) }
    }
    assertTensorError("geglu") { _ = try Ops.geglu(Tensor(zeros: [2, 5])) }
    assertTensorError("geglu") { _ = try Naive.geglu(Tensor(zeros: [2, 5])) }
  }

  func testAttention() {
    let q = Tensor(zeros: [1, 4, 8])
    let k = Tensor(zeros: [1, 3, 8])
    typealias Attn = (Tensor, Tensor, Tensor, Int, Tensor?) throws -> Tensor
    let fns: [Attn] = [
      { try Ops.attention(q: $0, k: $1, v: $2, heads: $3, bias: $4) },
      { try Naive.attention(q: $0, k: $1, v: $2, heads: $3, bias: $4) },
    ]
    for f in fns {
      assertTensorError("attention") { _ = try f(q, k, k, 3, nil) }
      assertTensorError("attention") { _ = try f(q, k, Tensor(zeros: [1, 4, 8]), 2, nil) }
      assertTensorError("attention") { _ = try f(q, Tensor(zeros: [1, 3, 6]), Tensor(zeros: [1, 3, 6]), 2, nil) }
      assertTensorError("attention") { _ = try f(q, k, k, 2, Tensor(zeros: [2, 3, 4])) }
      assertTensorError("attention") { _ = try f(Tensor(zeros: [4, 8]), k, k, 2, nil) }
    }
    assertTensorError("attention") { _ = try Ops.attention(q: q, k: k, v: k, heads: 2, queryChunk: 0) }
  }

  func testResizeShapeOpsAndConstruction() {
    assertTensorError("resizeBilinear") { _ = try Ops.resizeBilinear(self.img, height: 0, width: 3) }
    assertTensorError("resizeBilinear") { _ = try Naive.resizeBilinear(Tensor(zeros: [5, 5]), height: 2, width: 3) }
    assertTensorError("upsampleNearest2x") { _ = try Ops.upsampleNearest2x(Tensor(zeros: [5, 5])) }
    assertTensorError("upsampleNearest2x") { _ = try Naive.upsampleNearest2x(Tensor(zeros: [1, 0, 5])) }
    assertTensorError("add") { _ = try Ops.add(self.a23, self.a34) }
    assertTensorError("mul") { _ = try Ops.mul(Tensor(zeros: [2, 3]), Tensor(zeros: [3, 3])) }
    assertTensorError("broadcast") { _ = try Ops.broadcast(self.a34, to: [4]) }
    assertTensorError("broadcast") { _ = try Ops.broadcast(self.a34, to: [2, 3]) }
    assertTensorError("concat") { _ = try Ops.concat([self.a23, self.a34], axis: 0) }
    assertTensorError("concat") { _ = try Ops.concat([], axis: 0) }
    assertTensorError("concat") { _ = try Ops.concat([self.a23], axis: 2) }
    assertTensorError("split") { _ = try Ops.split(self.a23, axis: 1, sizes: [1, 1]) }
    assertTensorError("split") { _ = try Ops.split(self.a23, axis: -1, sizes: [2]) }
    assertTensorError("permute") { _ = try Ops.permute(self.a23, [0, 0]) }
    assertTensorError("reshape") { _ = try self.a23.reshaped([4, 2]) }
    assertTensorError("reshape") { _ = try self.a23.reshaped([-1, 4]) }
    assertTensorError("Tensor.init") { _ = try Tensor(shape: [2, 2], data: [1, 2, 3]) }
    assertTensorError("Tensor.init") { _ = try Tensor(shape: [-1], data: []) }
  }

  func testErrorMessageNamesShapes() {
    do {
      _ = try Ops.matmul(a23, a23)
      XCTFail("expected an error")
    } catch {
      XCTAssertEqual(
        "\(error)", "matmul: shape mismatch between [2, 3] and [2, 3]: inner dimensions 3 and 2 differ")
    }
  }
}
