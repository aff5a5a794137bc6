import COpenBLAS
import Foundation

/// The fast kernels. Each has a twin of the same name in `Naive`, and tests compare the two.
/// GEMM-shaped work goes to OpenBLAS' `cblas_sgemm`; elementwise and norm kernels fan out over
/// `Parallel`.
public enum Ops {
  /// `[..., M, K] × [..., K, N]` (transposes on the last two axes); a rank-2 `b` is shared by every batch item.
  public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false)
    throws -> Tensor
  {
    let g = try MatmulGeometry(a.shape, b.shape, transposeA: transposeA, transposeB: transposeB)
    var out = Tensor(zeros: g.outShape)
    guard g.m > 0, g.n > 0 else { return out }
    a.withUnsafeBufferPointer { pa in
      b.withUnsafeBufferPointer { pb in
        out.withUnsafeMutableBufferPointer { po in
          for bi in 0..<g.batch {
            sgemm(
              transposeA: transposeA, transposeB: transposeB, m: g.m, n: g.n, k: g.k,
              a: pa.baseAddress! + bi * g.m * g.k, lda: transposeA ? g.m : g.k,
              b: pb.baseAddress! + (g.bBatched ? bi * g.k * g.n : 0), ldb: transposeB ? g.k : g.n,
              c: po.baseAddress! + bi * g.m * g.n, ldc: g.n)
          }
        }
      }
    }
    return out
  }

  /// `x · Wᵀ + b` over the last axis; weight `[out, in]` as in nn.Linear.
  public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor {
    let (rows, inF, outF) = try linearGeometry(x, weight, bias)
    var out = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outF]) { o in
      guard rows > 0, outF > 0 else { return }
      if let bias {
        bias.withUnsafeBufferPointer { pb in
          for r in 0..<rows { (o.baseAddress! + r * outF).update(from: pb.baseAddress!, count: outF) }
        }
      } else {
        o.initialize(repeating: 0)
      }
    }
    guard rows > 0, outF > 0 else { return out }
    x.withUnsafeBufferPointer { px in
      weight.withUnsafeBufferPointer { pw in
        out.withUnsafeMutableBufferPointer { po in
          sgemm(
            transposeA: false, transposeB: true, m: rows, n: outF, k: inF, a: px.baseAddress!, lda: inF,
            b: pw.baseAddress!, ldb: inF, c: po.baseAddress!, ldc: outF, beta: 1)
        }
      }
    }
    return out
  }

  /// 2-D convolution of `[B, C, H, W]` with weight `[O, C, kh, kw]` (im2col + sgemm; 1×1 stride-1 skips im2col).
  public static func conv2d(
    _ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Padding2D = .zero
  ) throws -> Tensor {
    let g = try ConvGeometry(x.shape, weight.shape, bias?.shape, stride: stride, padding: padding)
    let kdim = g.inC * g.kh * g.kw
    let pixels = g.outH * g.outW
    var out = Tensor(zeros: [g.batch, g.outC, g.outH, g.outW])
    let direct = g.kh == 1 && g.kw == 1 && stride == 1 && padding == .zero
    var cols = [Float](repeating: 0, count: direct ? 0 : kdim * pixels)
    x.withUnsafeBufferPointer { px in
      weight.withUnsafeBufferPointer { pw in
        out.withUnsafeMutableBufferPointer { po in
          cols.withUnsafeMutableBufferPointer { pc in
            for b in 0..<g.batch {
              let src = px.baseAddress! + b * g.inC * g.inH * g.inW
              let dst = po.baseAddress! + b * g.outC * pixels
              if let bias {
                for o in 0..<g.outC {
                  (dst + o * pixels).update(repeating: bias.data[o], count: pixels)
                }
              }
              let colPtr: UnsafePointer<Float>
              if direct {
                colPtr = src
              } else {
                im2col(src, g: g, stride: stride, padding: padding, into: pc.baseAddress!)
                colPtr = UnsafePointer(pc.baseAddress!)
              }
              sgemm(
                transposeA: false, transposeB: false, m: g.outC, n: pixels, k: kdim, a: pw.baseAddress!,
                lda: kdim, b: colPtr, ldb: pixels, c: dst, ldc: pixels, beta: 1)
            }
          }
        }
      }
    }
    return out
  }

  /// Unfolds `[C, H, W]` into `[C·kh·kw, outH·outW]` rows (zero where the window leaves the image).
  static func im2col(
    _ src: UnsafePointer<Float>, g: ConvGeometry, stride: Int, padding: Padding2D,
    into cols: UnsafeMutablePointer<Float>
  ) {
    let pixels = g.outH * g.outW
    Parallel.forEach(g.inC * g.kh * g.kw) { row in
      let c = row / (g.kh * g.kw)
      let ky = (row / g.kw) % g.kh
      let kx = row % g.kw
      let dst = cols + row * pixels
      let plane = src + c * g.inH * g.inW
      for oy in 0..<g.outH {
        let iy = oy * stride + ky - padding.top
        let line = dst + oy * g.outW
        if iy < 0 || iy >= g.inH {
          line.update(repeating: 0, count: g.outW)
          continue
        }
        let srcLine = plane + iy * g.inW
        for ox in 0..<g.outW {
          let ix = ox * stride + kx - padding.left
          line[ox] = (ix >= 0 && ix < g.inW) ? srcLine[ix] : 0
        }
      }
    }
  }

  /// GroupNorm over `[B, C, ...]`; statistics per batch item and group, biased variance.
  public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float)
    throws -> Tensor
  {
    let (batch, channels, spatial) = try groupNormGeometry(x, groups, weight, bias)
    let cpg = channels / groups
    var out = x
    let w = weight?.data
    let bb = bias?.data
    x.withUnsafeBufferPointer { px in
      out.withUnsafeMutableBufferPointer { po in
        let src = px.baseAddress!
        let dst = po.baseAddress!
        Parallel.forEach(batch * groups) { bg in
          let g = bg % groups
          let start = bg * cpg * spatial
          let n = cpg * spatial
          var sum: Double = 0
          for i in 0..<n { sum += Double(src[start + i]) }
          let mean = sum / Double(n)
          var sq: Double = 0
          for i in 0..<n {
            let d = Double(src[start + i]) - mean
            sq += d * d
          }
          let inv = Float(1 / (sq / Double(n) + Double(eps)).squareRoot())
          let m = Float(mean)
          for c in 0..<cpg {
            let ch = g * cpg + c
            let scale = inv * (w?[ch] ?? 1)
            let shift = (bb?[ch] ?? 0) - m * scale
            let base = start + c * spatial
            for s in 0..<spatial { dst[base + s] = src[base + s] * scale + shift }
          }
        }
      }
    }
    return out
  }

  /// LayerNorm over the last axis.
  public static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor {
    let d = try lastAxisGeometry("layerNorm", x, weight, bias)
    return rowwise(x, d) { src, dst in
      var sum: Float = 0
      for i in 0..<d { sum += src[i] }
      let mean = sum / Float(d)
      var sq: Float = 0
      for i in 0..<d {
        let t = src[i] - mean
        sq += t * t
      }
      let inv = 1 / (sq / Float(d) + eps).squareRoot()
      for i in 0..<d {
        dst[i] = (src[i] - mean) * inv * (weight?.data[i] ?? 1) + (bias?.data[i] ?? 0)
      }
    }
  }

  /// T5's RMSNorm over the last axis (no mean subtraction, no bias).
  public static func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor {
    let d = try lastAxisGeometry("rmsNorm", x, weight, nil)
    return rowwise(x, d) { src, dst in
      var ms: Float = 0
      for i in 0..<d { ms += src[i] * src[i] }
      let inv = 1 / (ms / Float(d) + eps).squareRoot()
      for i in 0..<d { dst[i] = src[i] * inv * (weight?.data[i] ?? 1) }
    }
  }

  public static func silu(_ x: Tensor) -> Tensor { elementwise(x) { $0 / (1 + Foundation.exp(-$0)) } }
  /// GELU, exact erf form.
  public static func gelu(_ x: Tensor) -> Tensor {
    elementwise(x) { 0.5 * $0 * (1 + Foundation.erf($0 * 0.70710678118654752)) }
  }
  /// GELU, tanh approximation (`gelu_new`).
  public static func geluTanh(_ x: Tensor) -> Tensor {
    elementwise(x) { 0.5 * $0 * (1 + Foundation.tanh(0.79788456080286536 * ($0 + 0.044715 * $0 * $0 * $0))) }
  }

  /// GEGLU: value is the first half of the last axis, gate the second; value · GELU_erf(gate).
  public static func geglu(_ x: Tensor) throws -> Tensor {
    guard let d2 = x.shape.last, d2 % 2 == 0 else {
      throw TensorError.shapeMismatch(op: "geglu", shapes: [x.shape], detail: "last axis must be even")
    }
    let d = d2 / 2
    let rows = x.count / max(d2, 1)
    return x.withUnsafeBufferPointer { px in
      Tensor(uninitializedShape: Array(x.shape.dropLast()) + [d]) { po in
        let src = px.baseAddress!
        let dst = po.baseAddress!
        Parallel.forRange(rows, minChunk: max(1, 16384 / max(d, 1))) { r in
          for row in r {
            for i in 0..<d {
              let v = src[row * d2 + i]
              let g = src[row * d2 + d + i]
              dst[row * d + i] = v * 0.5 * g * (1 + Foundation.erf(g * 0.70710678118654752))
            }
          }
        }
      }
    }
  }

  /// Softmax over the last axis.
  public static func softmax(_ x: Tensor) -> Tensor {
    guard let d = x.shape.last, d > 0 else { return x }
    return rowwise(x, d) { src, dst in softmaxRow(src, dst, d) }
  }

  @inline(__always)
  static func softmaxRow(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ d: Int) {
    var m = -Float.infinity
    for i in 0..<d { m = max(m, src[i]) }
    var s: Float = 0
    for i in 0..<d {
      let e = Foundation.exp(src[i] - m)
      dst[i] = e
      s += e
    }
    let inv = 1 / s
    for i in 0..<d { dst[i] *= inv }
  }

  /// Multi-head attention on `[B, Tq, H·D]` / `[B, Tk, H·D]`, computed `queryChunk` query rows at a time
  /// so that at most `queryChunk × Tk` scores exist per head; `bias` `[H, Tq, Tk]` is added to the scores.
  public static func attention(
    q: Tensor, k: Tensor, v: Tensor, heads: Int, scale: Float? = nil, bias: Tensor? = nil,
    queryChunk: Int = 1024
  ) throws -> Tensor {
    let g = try AttentionGeometry(q.shape, k.shape, v.shape, heads: heads, bias: bias?.shape)
    guard queryChunk > 0 else {
      throw TensorError.invalidArgument(op: "attention", detail: "queryChunk must be positive")
    }
    let sc = scale ?? 1 / Float(g.headDim).squareRoot()
    var out = Tensor(zeros: q.shape)
    let chunk = min(queryChunk, max(g.tq, 1))
    var scores = [Float](repeating: 0, count: chunk * g.tk)
    q.withUnsafeBufferPointer { pq in
      k.withUnsafeBufferPointer { pk in
        v.withUnsafeBufferPointer { pv in
          out.withUnsafeMutableBufferPointer { po in
            scores.withUnsafeMutableBufferPointer { ps in
              let s = ps.baseAddress!
              for b in 0..<g.batch {
                for h in 0..<heads {
                  var i0 = 0
                  while i0 < g.tq {
                    let rows = min(chunk, g.tq - i0)
                    let qp = pq.baseAddress! + (b * g.tq + i0) * g.width + h * g.headDim
                    let kp = pk.baseAddress! + b * g.tk * g.width + h * g.headDim
                    let vp = pv.baseAddress! + b * g.tk * g.width + h * g.headDim
                    sgemm(
                      transposeA: false, transposeB: true, m: rows, n: g.tk, k: g.headDim, a: qp, lda: g.width,
                      b: kp, ldb: g.width, c: s, ldc: g.tk, alpha: sc)
                    let tk = g.tk
                    if let bias {
                      bias.withUnsafeBufferPointer { pb in
                        let bp = pb.baseAddress! + (h * g.tq + i0) * tk
                        for i in 0..<(rows * tk) { s[i] += bp[i] }
                      }
                    }
                    Parallel.forEach(rows) { r in softmaxRow(s + r * tk, s + r * tk, tk) }
                    sgemm(
                      transposeA: false, transposeB: false, m: rows, n: g.headDim, k: g.tk, a: s, lda: g.tk,
                      b: vp, ldb: g.width, c: po.baseAddress! + (b * g.tq + i0) * g.width + h * g.headDim,
                      ldc: g.width)
                    i0 += rows
                  }
                }
              }
            }
          }
        }
      }
    }
    return out
  }

  /// Nearest ×2 upsampling of `[B, C, H, W]`.
  public static func upsampleNearest2x(_ x: Tensor) throws -> Tensor {
    let (n, h, w) = try imageGeometry("upsampleNearest2x", x)
    return x.withUnsafeBufferPointer { px in
      Tensor(uninitializedShape: Array(x.shape.dropLast(2)) + [2 * h, 2 * w]) { po in
        let src = px.baseAddress!
        let dst = po.baseAddress!
        Parallel.forEach(n) { p in
          for y in 0..<h {
            let s = src + (p * h + y) * w
            let d0 = dst + (p * 2 * h + 2 * y) * 2 * w
            for xx in 0..<w {
              d0[2 * xx] = s[xx]
              d0[2 * xx + 1] = s[xx]
            }
            (d0 + 2 * w).update(from: d0, count: 2 * w)
          }
        }
      }
    }
  }

  /// Bilinear resize identical to `F.interpolate(mode="bilinear", align_corners=False)` (no antialias):
  /// source coordinate (o + 0.5)·in/out − 0.5 clamped at 0, weights computed in float32 as PyTorch does.
  public static func resizeBilinear(_ x: Tensor, height: Int, width: Int) throws -> Tensor {
    let (n, h, w) = try imageGeometry("resizeBilinear", x)
    guard height > 0, width > 0 else {
      throw TensorError.invalidArgument(op: "resizeBilinear", detail: "target size \(height)×\(width) must be positive")
    }
    func table(_ outSize: Int, _ inSize: Int) -> [(Int, Int, Float)] {
      let scale = Float(inSize) / Float(outSize)
      return (0..<outSize).map { o in
        let s = max(scale * (Float(o) + 0.5) - 0.5, 0)
        let i0 = min(Int(s), inSize - 1)
        let i1 = min(i0 + 1, inSize - 1)
        return (i0, i1, s - Float(i0))
      }
    }
    let ty = table(height, h)
    let tx = table(width, w)
    return x.withUnsafeBufferPointer { px in
      Tensor(uninitializedShape: Array(x.shape.dropLast(2)) + [height, width]) { po in
        let src = px.baseAddress!
        let dst = po.baseAddress!
        Parallel.forEach(n) { p in
          let plane = src + p * h * w
          for oy in 0..<height {
            let (y0, y1, fy) = ty[oy]
            let r0 = plane + y0 * w
            let r1 = plane + y1 * w
            let line = dst + (p * height + oy) * width
            for ox in 0..<width {
              let (x0, x1, fx) = tx[ox]
              line[ox] = (1 - fy) * ((1 - fx) * r0[x0] + fx * r0[x1]) + fy * ((1 - fx) * r1[x0] + fx * r1[x1])
            }
          }
        }
      }
    }
  }

  // MARK: helpers

  /// Row-major C = alpha·op(A)·op(B) + beta·C through OpenBLAS.
  @inline(__always)
  static func sgemm(
    transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1,
    beta: Float = 0
  ) {
    _ = Parallel.threadCount  // applies the thread setting before the first GEMM
    cblas_sgemm(
      CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
      blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
  }

  static func elementwise(_ x: Tensor, _ f: @escaping (Float) -> Float) -> Tensor {
    x.withUnsafeBufferPointer { px in
      Tensor(uninitializedShape: x.shape) { po in
        let src = px.baseAddress
        let dst = po.baseAddress
        guard let src, let dst else { return }
        Parallel.forRange(x.count, minChunk: 16384) { r in
          for i in r { dst[i] = f(src[i]) }
        }
      }
    }
  }

  static func rowwise(
    _ x: Tensor, _ d: Int, _ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void
  ) -> Tensor {
    let rows = d == 0 ? 0 : x.count / d
    return x.withUnsafeBufferPointer { px in
      Tensor(uninitializedShape: x.shape) { po in
        guard let src = px.baseAddress, let dst = po.baseAddress else { return }
        Parallel.forRange(rows, minChunk: max(1, 16384 / max(d, 1))) { r in
          for row in r { body(src + row * d, dst + row * d) }
        }
      }
    }
  }
}
