import Foundation

/// Naive reference twins of every kernel in `Ops`: plain loops written for clarity, in the
/// layouts and conventions of PyTorch. Tests compare the fast kernels against these
/// (STYLE.md rule 3); they are not used on any hot path.
public enum Naive {
  /// `[..., M, K] × [..., K, N]` (transposes applied to the last two axes); `b` may be rank 2 and shared.
  public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false)
    throws -> Tensor
  {
    let g = try MatmulGeometry(a.shape, b.shape, transposeA: transposeA, transposeB: transposeB)
    var out = Tensor(zeros: g.outShape)
    for bi in 0..<g.batch {
      let ao = bi * g.m * g.k
      let bo = g.bBatched ? bi * g.k * g.n : 0
      for i in 0..<g.m {
        for j in 0..<g.n {
          var acc: Double = 0
          for p in 0..<g.k {
            let av = transposeA ? a.data[ao + p * g.m + i] : a.data[ao + i * g.k + p]
            let bv = transposeB ? b.data[bo + j * g.k + p] : b.data[bo + p * g.n + j]
            acc += Double(av) * Double(bv)
          }
          out.data[bi * g.m * g.n + i * g.n + j] = Float(acc)
        }
      }
    }
    return out
  }

  /// `x · Wᵀ + b` over the last axis; weight `[out, in]` as PyTorch's nn.Linear.
  public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) throws -> Tensor {
    let (rows, inF, outF) = try linearGeometry(x, weight, bias)
    var out = Tensor(zeros: Array(x.shape.dropLast()) + [outF])
    for r in 0..<rows {
      for o in 0..<outF {
        var acc: Double = bias.map { Double($0.data[o]) } ?? 0
        for i in 0..<inF { acc += Double(x.data[r * inF + i]) * Double(weight.data[o * inF + i]) }
        out.data[r * outF + o] = Float(acc)
      }
    }
    return out
  }

  /// Direct convolution, `[B, C, H, W]` with weight `[O, C, kh, kw]`.
  public static func conv2d(
    _ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Padding2D = .zero
  ) throws -> Tensor {
    let g = try ConvGeometry(x.shape, weight.shape, bias?.shape, stride: stride, padding: padding)
    var out = Tensor(zeros: [g.batch, g.outC, g.outH, g.outW])
    for b in 0..<g.batch {
      for o in 0..<g.outC {
        for oy in 0..<g.outH {
          for ox in 0..<g.outW {
            var acc: Double = bias.map { Double($0.data[o]) } ?? 0
            for c in 0..<g.inC {
              for ky in 0..<g.kh {
                let iy = oy * stride + ky - padding.top
                if iy < 0 || iy >= g.inH { continue }
                for kx in 0..<g.kw {
                  let ix = ox * stride + kx - padding.left
                  if ix < 0 || ix >= g.inW { continue }
                  acc +=
                    Double(x.data[((b * g.inC + c) * g.inH + iy) * g.inW + ix])
                    * Double(weight.data[((o * g.inC + c) * g.kh + ky) * g.kw + kx])
                }
              }
            }
            out.data[((b * g.outC + o) * g.outH + oy) * g.outW + ox] = Float(acc)
          }
        }
      }
    }
    return out
  }

  /// GroupNorm over `[B, C, ...]` (statistics per batch item and group, biased variance).
  public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float)
    throws -> Tensor
  {
    let (batch, channels, spatial) = try groupNormGeometry(x, groups, weight, bias)
    let cpg = channels / groups
    var out = x
    for b in 0..<batch {
      for g in 0..<groups {
        let start = (b * channels + g * cpg) * spatial
        let n = cpg * spatial
        var mean: Double = 0
        for i in 0..<n { mean += Double(x.data[start + i]) }
        mean /= Double(n)
        var variance: Double = 0
        for i in 0..<n {
          let d = Double(x.data[start + i]) - mean
          variance += d * d
        }
        variance /= Double(n)
        let inv = 1 / (variance + Double(eps)).squareRoot()
        for c in 0..<cpg {
          let ch = g * cpg + c
          let w = weight.map { Double($0.data[ch]) } ?? 1
          let bb = bias.map { Double($0.data[ch]) } ?? 0
          for s in 0..<spatial {
            let i = start + c * spatial + s
            out.data[i] = Float((Double(x.data[i]) - mean) * inv * w + bb)
          }
        }
      }
    }
    return out
  }

  /// LayerNorm over the last axis.
  public static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor {
    let d = try lastAxisGeometry("layerNorm", x, weight, bias)
    var out = x
    for r in 0..<(x.count / max(d, 1)) {
      var mean: Double = 0
      for i in 0..<d { mean += Double(x.data[r * d + i]) }
      mean /= Double(d)
      var variance: Double = 0
      for i in 0..<d {
        let t = Double(x.data[r * d + i]) - mean
        variance += t * t
      }
      variance /= Double(d)
      let inv = 1 / (variance + Double(eps)).squareRoot()
      for i in 0..<d {
        let w = weight.map { Double($0.data[i]) } ?? 1
        let b = bias.map { Double($0.data[i]) } ?? 0
        out.data[r * d + i] = Float((Double(x.data[r * d + i]) - mean) * inv * w + b)
      }
    }
    return out
  }

  /// T5's RMSNorm over the last axis: `x / sqrt(mean(x²) + eps) · weight` (no mean, no bias).
  public static func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor {
    let d = try lastAxisGeometry("rmsNorm", x, weight, nil)
    var out = x
    for r in 0..<(x.count / max(d, 1)) {
      var ms: Double = 0
      for i in 0..<d { ms += Double(x.data[r * d + i]) * Double(x.data[r * d + i]) }
      ms /= Double(d)
      let inv = 1 / (ms + Double(eps)).squareRoot()
      for i in 0..<d {
        out.data[r * d + i] = Float(Double(x.data[r * d + i]) * inv * Double(weight?.data[i] ?? 1))
      }
    }
    return out
  }

  public static func silu(_ x: Tensor) -> Tensor { map(x) { $0 / (1 + exp(-$0)) } }
  /// GELU with the exact erf form, x·Φ(x) = ½x(1 + erf(x/√2)), written ½x·erfc(−x/√2) so that the
  /// negative tail is not lost to cancellation in 1 + erf.
  public static func gelu(_ x: Tensor) -> Tensor { map(x) { 0.5 * $0 * erfc(-$0 / 2.0.squareRoot()) } }
  /// GELU with the tanh approximation (`gelu_new`, T5 v1.1's gated-gelu), ½x(1 + tanh u) with
  /// u = √(2/π)(x + 0.044715x³), written as the identical x / (1 + e^(−2u)) for the same reason.
  public static func geluTanh(_ x: Tensor) -> Tensor {
    map(x) { $0 / (1 + exp(-2 * (2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }
  }

  /// GEGLU: the last axis is split in halves (value, gate); returns value · GELU_erf(gate).
  public static func geglu(_ x: Tensor) throws -> Tensor {
    guard let d2 = x.shape.last, d2 % 2 == 0 else {
      throw TensorError.shapeMismatch(op: "geglu", shapes: [x.shape], detail: "last axis must be even")
    }
    let d = d2 / 2
    var out = Tensor(zeros: Array(x.shape.dropLast()) + [d])
    for r in 0..<(x.count / max(d2, 1)) {
      for i in 0..<d {
        let v = Double(x.data[r * d2 + i])
        let g = Double(x.data[r * d2 + d + i])
        out.data[r * d + i] = Float(v * 0.5 * g * erfc(-g / 2.0.squareRoot()))
      }
    }
    return out
  }

  /// Softmax over the last axis.
  public static func softmax(_ x: Tensor) -> Tensor {
    guard let d = x.shape.last, d > 0 else { return x }
    var out = x
    for r in 0..<(x.count / d) {
      var m = -Double.infinity
      for i in 0..<d { m = max(m, Double(x.data[r * d + i])) }
      var s: Double = 0
      for i in 0..<d { s += exp(Double(x.data[r * d + i]) - m) }
      for i in 0..<d { out.data[r * d + i] = Float(exp(Double(x.data[r * d + i]) - m) / s) }
    }
    return out
  }

  /// Multi-head attention on `[B, Tq, H·D]` queries and `[B, Tk, H·D]` keys/values:
  /// softmax(q·kᵀ·scale + bias)·v per head; `bias` is `[H, Tq, Tk]` (T5's position bias) or nil.
  public static func attention(
    q: Tensor, k: Tensor, v: Tensor, heads: Int, scale: Float? = nil, bias: Tensor? = nil
  ) throws -> Tensor {
    let g = try AttentionGeometry(q.shape, k.shape, v.shape, heads: heads, bias: bias?.shape)
    let sc = Double(scale ?? 1 / Float(g.headDim).squareRoot())
    var out = Tensor(zeros: q.shape)
    var scores = [Double](repeating: 0, count: g.tk)
    for b in 0..<g.batch {
      for h in 0..<heads {
        for i in 0..<g.tq {
          var m = -Double.infinity
          for j in 0..<g.tk {
            var acc: Double = 0
            for d in 0..<g.headDim {
              acc +=
                Double(q.data[(b * g.tq + i) * g.width + h * g.headDim + d])
                * Double(k.data[(b * g.tk + j) * g.width + h * g.headDim + d])
            }
            acc *= sc
            if let bias { acc += Double(bias.data[(h * g.tq + i) * g.tk + j]) }
            scores[j] = acc
            m = max(m, acc)
          }
          var s: Double = 0
          for j in 0..<g.tk {
            scores[j] = exp(scores[j] - m)
            s += scores[j]
          }
          for d in 0..<g.headDim {
            var acc: Double = 0
            for j in 0..<g.tk { acc += scores[j] * Double(v.data[(b * g.tk + j) * g.width + h * g.headDim + d]) }
            out.data[(b * g.tq + i) * g.width + h * g.headDim + d] = Float(acc / s)
          }
        }
      }
    }
    return out
  }

  /// Nearest-neighbour ×2 upsampling of `[B, C, H, W]`.
  public static func upsampleNearest2x(_ x: Tensor) throws -> Tensor {
    let (n, h, w) = try imageGeometry("upsampleNearest2x", x)
    var out = Tensor(zeros: Array(x.shape.dropLast(2)) + [2 * h, 2 * w])
    for p in 0..<n {
      for y in 0..<(2 * h) {
        for xx in 0..<(2 * w) { out.data[(p * 2 * h + y) * 2 * w + xx] = x.data[(p * h + y / 2) * w + xx / 2] }
      }
    }
    return out
  }

  /// Bilinear resize of `[B, C, H, W]` as `F.interpolate(mode="bilinear", align_corners=False)`, no antialias.
  public static func resizeBilinear(_ x: Tensor, height: Int, width: Int) throws -> Tensor {
    let (n, h, w) = try imageGeometry("resizeBilinear", x)
    guard height > 0, width > 0 else {
      throw TensorError.invalidArgument(op: "resizeBilinear", detail: "target size \(height)×\(width) must be positive")
    }
    var out = Tensor(zeros: Array(x.shape.dropLast(2)) + [height, width])
    // PyTorch's area_pixel_compute_source_index: scale = in/out and src = max(scale·(o + ½) − ½, 0), both
    // in float32; the interpolation itself is done here in double.
    func source(_ o: Int, _ outSize: Int, _ size: Int) -> (Int, Int, Double) {
      let scale = Float(size) / Float(outSize)
      let s = max(scale * (Float(o) + 0.5) - 0.5, 0)
      let i0 = min(Int(s), size - 1)
      let i1 = min(i0 + 1, size - 1)
      return (i0, i1, Double(s - Float(i0)))
    }
    for p in 0..<n {
      for oy in 0..<height {
        let (y0, y1, fy) = source(oy, height, h)
        for ox in 0..<width {
          let (x0, x1, fx) = source(ox, width, w)
          let a = Double(x.data[(p * h + y0) * w + x0])
          let b = Double(x.data[(p * h + y0) * w + x1])
          let c = Double(x.data[(p * h + y1) * w + x0])
          let d = Double(x.data[(p * h + y1) * w + x1])
          out.data[(p * height + oy) * width + ox] = Float(
            (1 - fy) * ((1 - fx) * a + fx * b) + fy * ((1 - fx) * c + fx * d))
        }
      }
    }
    return out
  }

  static func map(_ x: Tensor, _ f: (Double) -> Double) -> Tensor {
    var out = x
    for i in 0..<x.count { out.data[i] = Float(f(Double(x.data[i]))) }
    return out
  }
}
