import XCTest

@testable import Tensor

/// Every fast kernel in `Ops` against its twin in `Naive` on random shapes: odd sizes, 1×1, stride 2,
/// the VAE's asymmetric padding, batch > 1, broadcasting, and chunk sizes that force several chunks.
final class OpsVsNaiveTests: XCTestCase {
  var rng = TestRandom(seed: 0xC0F1_0002)

  /// Absolute tolerance scaled to the magnitude of the reference (float32 rounding in long sums).
  func scaledAtol(_ t: Tensor, _ factor: Float = 1e-5) -> Float {
    let rms = (t.data.reduce(0) { $0 + Double($1) * Double($1) } / Double(max(t.count, 1))).squareRoot()
    return factor * Float(max(rms, 1e-3))
  }

  func withThreads(_ n: Int, _ body: () throws -> Void) rethrows {
    let saved = Parallel.threadCount
    Parallel.threadCount = n
    defer { Parallel.threadCount = saved }
    try body()
  }

  func testMatmulRandomShapes() throws {
    for trial in 0..<24 {
      let m = rng.int(1...17)
      let k = rng.int(1...33)
      let n = rng.int(1...19)
      let batch = trial % 3 == 0 ? [Int]() : [rng.int(1...3)] + (trial % 4 == 0 ? [2] : [])
      let ta = rng.int(0...1) == 1
      let tb = rng.int(0...1) == 1
      let shareB = trial % 5 == 0
      let a = rng.tensor(batch + (ta ? [k, m] : [m, k]))
      let b = rng.tensor((shareB ? [] : batch) + (tb ? [n, k] : [k, n]))
      let fast = try Ops.matmul(a, b, transposeA: ta, transposeB: tb)
      let slow = try Naive.matmul(a, b, transposeA: ta, transposeB: tb)
      XCTAssertEqual(fast.shape, batch + [m, n])
      assertClose(fast, slow, rtol: 1e-5, atol: scaledAtol(slow), "matmul trial \(trial)")
    }
  }

  func testEmptyInnerDimensionsGiveZerosOrBias() throws {
    let a = Tensor(zeros: [3, 0])
    let b = Tensor(zeros: [0, 4])
    XCTAssertEqual(try Ops.matmul(a, b), try Naive.matmul(a, b))
    XCTAssertEqual(try Ops.matmul(a, b), Tensor(zeros: [3, 4]))
    let bias = try Tensor(shape: [2], data: [1, -2])
    XCTAssertEqual(
      try Ops.linear(Tensor(zeros: [3, 0]), weight: Tensor(zeros: [2, 0]), bias: bias),
      try Tensor(shape: [3, 2], data: [1, -2, 1, -2, 1, -2]))
    XCTAssertEqual(
      try Naive.linear(Tensor(zeros: [3, 0]), weight: Tensor(zeros: [2, 0]), bias: bias),
      try Tensor(shape: [3, 2], data: [1, -2, 1, -2, 1, -2]))
    XCTAssertEqual(try Ops.matmul(Tensor(zeros: [0, 2, 3]), Tensor(zeros: [0, 3, 1])).shape, [0, 2, 1])
  }

  func testLinearRandomShapes() throws {
    for trial in 0..<16 {
      let inF = rng.int(1...40)
      let outF = rng.int(1...24)
      let lead = [[], [rng.int(1...5)], [rng.int(1...3), rng.int(1...7)]][trial % 3]
      let x = rng.tensor(lead + [inF])
      let w = rng.tensor([outF, inF])
      let b = trial % 2 == 0 ? rng.tensor([outF]) : nil
      let fast = try Ops.linear(x, weight: w, bias: b)
      let slow = try Naive.linear(x, weight: w, bias: b)
      XCTAssertEqual(fast.shape, lead + [outF])
      assertClose(fast, slow, rtol: 1e-5, atol: scaledAtol(slow), "linear trial \(trial)")
    }
  }

  func testConv2dCoversUNetAndVAEVariants() throws {
    // (kernel, stride, padding): UNet 3×3 s1 p1, UNet downsample s2 p1, VAE downsample (0,1,0,1) s2,
    // 1×1, and odd extras (3×3 pad 0, 2×3 kernels, stride 3, pad 2).
    let variants: [(Int, Int, Int, Padding2D)] = [
      (3, 3, 1, .uniform(1)), (3, 3, 2, .uniform(1)), (3, 3, 2, .vaeDownsample), (1, 1, 1, .zero),
      (3, 3, 1, .zero), (2, 3, 1, Padding2D(top: 1, bottom: 0, left: 2, right: 1)), (3, 3, 3, .uniform(2)),
      (1, 1, 2, .zero),
    ]
    let savedBytes = Ops.convColumnBytes
    let savedPixels = Ops.convMinChunkPixels
    defer {
      Ops.convColumnBytes = savedBytes
      Ops.convMinChunkPixels = savedPixels
    }
    for (i, (kh, kw, stride, padding)) in variants.enumerated() {
      for trial in 0..<3 {
        let batch = rng.int(1...3)
        let cin = rng.int(1...5)
        let cout = rng.int(1...6)
        let h = rng.int(max(kh, 3)...11)
        let w = rng.int(max(kw, 3)...12)
        let x = rng.tensor([batch, cin, h, w])
        let weight = rng.tensor([cout, cin, kh, kw])
        let bias = trial == 1 ? nil : rng.tensor([cout])
        // Trial 2 forces one output row per im2col chunk.
        Ops.convColumnBytes = trial == 2 ? 1 : savedBytes
        Ops.convMinChunkPixels = trial == 2 ? 1 : savedPixels
        let fast = try Ops.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
        let slow = try Naive.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
        assertClose(fast, slow, rtol: 1e-5, atol: scaledAtol(slow), "conv variant \(i) trial \(trial) \(x.shape)")
      }
    }
  }

  func testConv2dVAEDownsampleEqualsExplicitPadding() throws {
    // Padding2D.vaeDownsample must equal F.pad(x, (0, 1, 0, 1)) followed by a pad-0 stride-2 conv.
    let x = rng.tensor([1, 2, 6, 7])
    let w = rng.tensor([3, 2, 3, 3])
    var padded = Tensor(zeros: [1, 2, 7, 8])
    for c in 0..<2 {
      for y in 0..<6 {
        for xx in 0..<7 { padded.data[(c * 7 + y) * 8 + xx] = x.data[(c * 6 + y) * 7 + xx] }
      }
    }
    let a = try Ops.conv2d(x, weight: w, bias: nil, stride: 2, padding: .vaeDownsample)
    let b = try Naive.conv2d(padded, weight: w, bias: nil, stride: 2, padding: .zero)
    XCTAssertEqual(a.shape, [1, 3, 3, 3])  // (6 + 1 − 3)/2 + 1 by (7 + 1 − 3)/2 + 1
    assertClose(a, b, rtol: 1e-5, atol: 1e-5, "vae downsample")
  }

  func testGroupNormRandomShapes() throws {
    for trial in 0..<12 {
      let groups = rng.int(1...4)
      let c = groups * rng.int(1...4)
      let batch = rng.int(1...3)
      let spatial: [Int] = [[], [rng.int(1...9)], [rng.int(1...7), rng.int(1...9)]][trial % 3]
      // A large common offset checks the variance against cancellation.
      let x = rng.tensor([batch, c] + spatial, scale: 2, shift: trial % 2 == 0 ? 0 : 300)
      let w = trial % 4 == 3 ? nil : rng.tensor([c])
      let b = trial % 4 == 2 ? nil : rng.tensor([c])
      let eps: Float = trial % 2 == 0 ? 1e-5 : 1e-6
      let fast = try Ops.groupNorm(x, groups: groups, weight: w, bias: b, eps: eps)
      let slow = try Naive.groupNorm(x, groups: groups, weight: w, bias: b, eps: eps)
      assertClose(fast, slow, rtol: 1e-5, atol: 2e-5, "groupNorm trial \(trial) \(x.shape)")
    }
    // A realistic UNet group (20 channels × 16²) exercises the blocked SIMD accumulation.
    let x = rng.tensor([2, 40, 16, 16], shift: 0.5)
    assertClose(
      try Ops.groupNorm(x, groups: 2, weight: nil, bias: nil, eps: 1e-5),
      try Naive.groupNorm(x, groups: 2, weight: nil, bias: nil, eps: 1e-5), rtol: 1e-5, atol: 2e-5, "big group")
  }

  func testLayerNormAndRMSNorm() throws {
    for trial in 0..<12 {
      let d = [1, 7, 8, 33, 100, 640][trial % 6]
      let x = rng.tensor([rng.int(1...3), rng.int(1...5), d], shift: trial % 2 == 0 ? 0 : 50)
      let w = trial % 3 == 0 ? nil : rng.tensor([d])
      let b = trial % 4 == 0 ? nil : rng.tensor([d])
      assertClose(
        try Ops.layerNorm(x, weight: w, bias: b, eps: 1e-5), try Naive.layerNorm(x, weight: w, bias: b, eps: 1e-5),
        rtol: 1e-5, atol: 2e-5, "layerNorm d=\(d)")
      assertClose(
        try Ops.rmsNorm(x, weight: w, eps: 1e-6), try Naive.rmsNorm(x, weight: w, eps: 1e-6), rtol: 1e-5,
        atol: 1e-6, "rmsNorm d=\(d)")
    }
  }

  func testActivations() throws {
    // Sizes around the 16-lane vector width and the 16384-element parallel chunk.
    for n in [1, 7, 8, 9, 15, 16, 17, 33, 100, 20_001] {
      let x = rng.tensor([n], scale: 4)
      assertClose(Ops.silu(x), Naive.silu(x), rtol: 2e-6, atol: 1e-7, "silu n=\(n)")
      var inPlace = x
      Ops.siluInPlace(&inPlace)
      assertClose(inPlace, Naive.silu(x), rtol: 2e-6, atol: 1e-7, "siluInPlace n=\(n)")
      assertClose(Ops.gelu(x), Naive.gelu(x), rtol: 3e-6, atol: 1e-7, "gelu n=\(n)")
      assertClose(Ops.geluTanh(x), Naive.geluTanh(x), rtol: 2e-6, atol: 1e-7, "geluTanh n=\(n)")
    }
    // Tails and special values.
    let special = try Tensor(shape: [9], data: [0, -0.0, 30, -30, 100, -100, 1e-20, -1e-20, -9])
    assertClose(Ops.silu(special), Naive.silu(special), rtol: 2e-6, atol: 1e-30, "silu special")
    assertClose(Ops.gelu(special), Naive.gelu(special), rtol: 3e-6, atol: 1e-30, "gelu special")
    assertClose(Ops.geluTanh(special), Naive.geluTanh(special), rtol: 2e-6, atol: 1e-30, "geluTanh special")
    XCTAssertTrue(Ops.gelu(special).data.allSatisfy { $0.isFinite })
  }

  func testGeglu() throws {
    for d in [1, 3, 8, 13, 16, 17, 40, 64] {
      let x = rng.tensor([rng.int(1...3), rng.int(1...4), 2 * d], scale: 3)
      assertClose(try Ops.geglu(x), try Naive.geglu(x), rtol: 3e-6, atol: 1e-7, "geglu d=\(d)")
    }
  }

  func testSoftmax() throws {
    for d in [1, 2, 7, 8, 9, 64, 225, 1000] {
      let x = rng.tensor([rng.int(1...4), d], scale: 5)
      assertClose(Ops.softmax(x), Naive.softmax(x), rtol: 2e-6, atol: 1e-9, "softmax d=\(d)")
    }
    // −∞ entries (masks) and large magnitudes.
    let x = try Tensor(shape: [2, 5], data: [-.infinity, 1, 2, -.infinity, 3, 1000, 999, -1000, 0, 1000])
    assertClose(Ops.softmax(x), Naive.softmax(x), rtol: 2e-6, atol: 1e-12, "softmax special")
  }

  func testAttentionChunkedParallelAndSerial() throws {
    let savedTile = Ops.attentionTileBytes
    defer { Ops.attentionTileBytes = savedTile }
    for trial in 0..<12 {
      let heads = rng.int(1...4)
      let d = [1, 4, 8, 13][trial % 4]
      let batch = rng.int(1...2)
      let tq = rng.int(1...37)
      let tk = rng.int(1...29)
      let q = rng.tensor([batch, tq, heads * d])
      let k = rng.tensor([batch, tk, heads * d])
      let v = rng.tensor([batch, tk, heads * d])
      let bias = trial % 3 == 0 ? rng.tensor([heads, tq, tk]) : nil
      let scale: Float? = trial % 4 == 1 ? 0.3 : nil
      let chunk = [1, 3, 1024][trial % 3]
      Ops.attentionTileBytes = trial % 2 == 0 ? 1 : savedTile
      let slow = try Naive.attention(q: q, k: k, v: v, heads: heads, scale: scale, bias: bias)
      for threads in [1, 2] {
        try withThreads(threads) {
          let fast = try Ops.attention(q: q, k: k, v: v, heads: heads, scale: scale, bias: bias, queryChunk: chunk)
          assertClose(fast, slow, rtol: 1e-5, atol: 2e-6, "attention trial \(trial) threads \(threads)")
        }
      }
    }
  }

  func testUpsampleAndResize() throws {
    for trial in 0..<10 {
      let x = rng.tensor([rng.int(1...2), rng.int(1...3), rng.int(1...9), rng.int(1...9)])
      assertClose(try Ops.upsampleNearest2x(x), try Naive.upsampleNearest2x(x), rtol: 0, atol: 0, "nearest")
      let h = rng.int(1...20)
      let w = rng.int(1...20)
      assertClose(
        try Ops.resizeBilinear(x, height: h, width: w), try Naive.resizeBilinear(x, height: h, width: w),
        rtol: 1e-6, atol: 1e-6, "resize trial \(trial) \(x.shape) → \(h)×\(w)")
    }
  }

  func testBroadcastingArithmetic() throws {
    let pairs: [([Int], [Int])] = [
      ([2, 3, 4, 5], [2, 3, 4, 5]), ([2, 3, 4, 5], [1, 3, 1, 1]), ([2, 3, 4, 5], [3, 1, 1]), ([2, 3, 1, 5], [4, 1]),
      ([5], [2, 3, 5]), ([1], [3, 7]), ([2, 1, 7], [1, 3, 1]), ([4, 6], [4, 1]),
    ]
    for (sa, sb) in pairs {
      let a = rng.tensor(sa)
      let b = rng.tensor(sb)
      let shape = try Ops.broadcastShape(sa, sb)
      for (name, op, f) in [
        ("add", Ops.add, { (x: Float, y: Float) in x + y }), ("sub", Ops.sub, { $0 - $1 }),
        ("mul", Ops.mul, { $0 * $1 }),
      ] as [(String, (Tensor, Tensor) throws -> Tensor, (Float, Float) -> Float)] {
        let out = try op(a, b)
        XCTAssertEqual(out.shape, shape, "\(name) \(sa) \(sb)")
        var expected = Tensor(zeros: shape)
        for i in 0..<expected.count {
          expected.data[i] = f(a.data[broadcastIndex(i, shape, sa)], b.data[broadcastIndex(i, shape, sb)])
        }
        assertClose(out, expected, rtol: 0, atol: 0, "\(name) \(sa) \(sb)")
      }
    }
    let x = rng.tensor([3, 1, 2])
    let big = try Ops.broadcast(x, to: [2, 3, 4, 2])
    for i in 0..<big.count { XCTAssertEqual(big.data[i], x.data[broadcastIndex(i, big.shape, x.shape)]) }
  }

  /// Index into a tensor of `small` shape for flat index `i` of the broadcast `shape`.
  func broadcastIndex(_ i: Int, _ shape: [Int], _ small: [Int]) -> Int {
    var rem = i
    var index = 0
    var step = 1
    for axis in stride(from: shape.count - 1, through: 0, by: -1) {
      let coord = rem % shape[axis]
      rem /= shape[axis]
      let sAxis = axis - (shape.count - small.count)
      if sAxis >= 0 {
        if small[sAxis] != 1 { index += coord * step }
        step *= small[sAxis]
      }
    }
    return index
  }

  func testAffineClampConcatSplitPermute() throws {
    let x = rng.tensor([3, 4, 5])
    let aff = Ops.affine(x, scale: 2.5, shift: -1)
    let cl = Ops.clamp(x, -0.5, 0.25)
    for i in 0..<x.count {
      XCTAssertEqual(aff.data[i], x.data[i] * 2.5 - 1, accuracy: 1e-6)
      XCTAssertEqual(cl.data[i], min(max(x.data[i], -0.5), 0.25))
    }
    for axis in 0..<3 {
      var sizes = [1, x.shape[axis] - 1]
      if axis == 2 { sizes = [2, 0, 3] }
      let parts = try Ops.split(x, axis: axis, sizes: sizes)
      XCTAssertEqual(parts.map { $0.shape[axis] }, sizes)
      XCTAssertEqual(try Ops.concat(parts, axis: axis), x, "split/concat axis \(axis)")
    }
    let p = try Ops.permute(x, [2, 0, 1])
    XCTAssertEqual(p.shape, [5, 3, 4])
    for a in 0..<3 {
      for b in 0..<4 {
        for c in 0..<5 { XCTAssertEqual(p.data[(c * 3 + a) * 4 + b], x.data[(a * 4 + b) * 5 + c]) }
      }
    }
    XCTAssertEqual(try Ops.permute(try Ops.permute(x, [1, 2, 0]), [2, 0, 1]), x)
  }
}
