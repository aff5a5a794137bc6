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
    // An empty inner dimension gives zeros (OpenBLAS would reject lda = 0).
    guard g.m > 0, g.n > 0, g.k > 0, g.batch > 0 else { return out }
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
    guard rows > 0, outF > 0, inF > 0 else { return out }
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

  /// Bytes of im2col column buffer per chunk: large enough that each chunk's GEMM (`[O, C·kh·kw] ×
  /// [C·kh·kw, pixels]`) stays at full sgemm speed, small enough that the buffer lives in the L3 cache
  /// instead of costing a DRAM round trip (and gigabytes at VAE resolutions).
  nonisolated(unsafe) public static var convColumnBytes = 16 << 20
  /// Lower bound on output pixels per im2col chunk (GEMM width), which wins over `convColumnBytes`.
  nonisolated(unsafe) public static var convMinChunkPixels = 1024

  /// 2-D convolution of `[B, C, H, W]` with weight `[O, C, kh, kw]`.
  ///
  /// im2col + sgemm over chunks of output rows (`convColumnBytes` bounds the column buffer); a 1×1
  /// stride-1 unpadded convolution is one GEMM on the input itself.
  public static func conv2d(
    _ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Padding2D = .zero
  ) throws -> Tensor {
    let g = try ConvGeometry(x.shape, weight.shape, bias?.shape, stride: stride, padding: padding)
    let kdim = g.inC * g.kh * g.kw
    let pixels = g.outH * g.outW
    let direct = g.kh == 1 && g.kw == 1 && stride == 1 && padding == .zero
    // Rows per chunk: within the byte budget, but at least `convMinChunkPixels` output pixels so that the GEMM's
    // N stays wide (a 16²×1280 layer runs in one chunk), then evened out across chunks.
    var rowsPerChunk = g.outH
    if !direct {
      let budgetRows = convColumnBytes / max(1, kdim * g.outW * 4)
      let minRows = (convMinChunkPixels + g.outW - 1) / g.outW
      rowsPerChunk = max(1, min(g.outH, max(budgetRows, minRows)))
      let chunks = (g.outH + rowsPerChunk - 1) / rowsPerChunk
      rowsPerChunk = (g.outH + chunks - 1) / chunks
    }
    // im2col writes every element of a chunk before the GEMM reads it: no need to zero the buffer.
    let colCount = direct ? 0 : kdim * rowsPerChunk * g.outW
    var cols = [Float](unsafeUninitializedCapacity: colCount) { _, initialized in initialized = colCount }
    var out = Tensor(uninitializedShape: [g.batch, g.outC, g.outH, g.outW]) { o in
      guard let dst = o.baseAddress else { return }
      // Start from the bias so that the GEMMs accumulate onto it (beta = 1).
      for bo in 0..<(g.batch * g.outC) {
        (dst + bo * pixels).initialize(repeating: bias?.data[bo % g.outC] ?? 0, count: pixels)
      }
    }
    guard pixels > 0, g.outC > 0, g.batch > 0 else { return out }
    if kdim == 0 { return out }
    x.withUnsafeBufferPointer { px in
      weight.withUnsafeBufferPointer { pw in
        out.withUnsafeMutableBufferPointer { po in
          cols.withUnsafeMutableBufferPointer { pc in
            for b in 0..<g.batch {
              let src = px.baseAddress! + b * g.inC * g.inH * g.inW
              let dst = po.baseAddress! + b * g.outC * pixels
              if direct {
                sgemm(
                  transposeA: false, transposeB: false, m: g.outC, n: pixels, k: kdim, a: pw.baseAddress!,
                  lda: kdim, b: src, ldb: pixels, c: dst, ldc: pixels, beta: 1)
                continue
              }
              var y0 = 0
              while y0 < g.outH {
                let rows = min(rowsPerChunk, g.outH - y0)
                let n = rows * g.outW
                im2col(
                  src, g: g, stride: stride, padding: padding, rows: y0..<(y0 + rows), into: pc.baseAddress!)
                sgemm(
                  transposeA: false, transposeB: false, m: g.outC, n: n, k: kdim, a: pw.baseAddress!,
                  lda: kdim, b: pc.baseAddress!, ldb: n, c: dst + y0 * g.outW, ldc: pixels, beta: 1)
                y0 += rows
              }
            }
          }
        }
      }
    }
    return out
  }

  /// Unfolds output rows `rows` of `[C, H, W]` into `[C·kh·kw, rows·outW]` (zero where the window
  /// leaves the image).
  static func im2col(
    _ src: UnsafePointer<Float>, g: ConvGeometry, stride: Int, padding: Padding2D, rows: Range<Int>,
    into cols: UnsafeMutablePointer<Float>
  ) {
    let n = rows.count * g.outW
    let outW = g.outW
    let inW = g.inW
    Parallel.forRange(g.inC * g.kh * g.kw, minChunk: max(1, 32768 / max(n, 1))) { range in
      for row in range {
        let c = row / (g.kh * g.kw)
        let ky = (row / g.kw) % g.kh
        let kx = row % g.kw
        let dst = cols + row * n
        let plane = src + c * g.inH * inW
        // Output columns whose input column lies inside the image: lo..<hi.
        let off = kx - padding.left
        let lo = off >= 0 ? 0 : min(outW, (-off + stride - 1) / stride)
        let hi = max(lo, min(outW, inW - off > 0 ? (inW - off - 1) / stride + 1 : 0))
        for (j, oy) in rows.enumerated() {
          let iy = oy * stride + ky - padding.top
          let line = dst + j * outW
          if iy < 0 || iy >= g.inH {
            line.update(repeating: 0, count: outW)
            continue
          }
          let srcLine = plane + iy * inW + off
          if lo > 0 { line.update(repeating: 0, count: lo) }
          if stride == 1 {
            (line + lo).update(from: srcLine + lo, count: hi - lo)
          } else {
            for ox in lo..<hi { line[ox] = srcLine[ox * stride] }
          }
          if hi < outW { (line + hi).update(repeating: 0, count: outW - hi) }
        }
      }
    }
  }

  /// GroupNorm over `[B, C, ...]`; statistics per batch item and group, biased variance.
  ///
  /// One read for the statistics (sums of x − x₀ and its square, shifted by the group's first element
  /// against cancellation, in float SIMD lanes flushed to Double every block) and one read + write for
  /// the output (x − mean)·scale + shift; a UNet group (20 channels × 64²) fits in L2, so the second read is cheap.
  public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float)
    throws -> Tensor
  {
    let (batch, channels, spatial) = try groupNormGeometry(x, groups, weight, bias)
    let cpg = channels / groups
    let w = weight?.data
    let bb = bias?.data
    return x.withUnsafeBufferPointer { px in
      Tensor(uninitializedShape: x.shape) { po in
        guard let src = px.baseAddress, let dst = po.baseAddress else { return }
        Parallel.forEach(batch * groups) { bg in
          let g = bg % groups
          let start = bg * cpg * spatial
          let n = cpg * spatial
          guard n > 0 else { return }
          let (mean, variance) = shiftedMoments(src + start, n)
          let inv = Float(1 / (variance + Double(eps)).squareRoot())
          let m = Float(mean)
          for c in 0..<cpg {
            let ch = g * cpg + c
            let base = start + c * spatial
            centeredAffineRow(src + base, dst + base, spatial, m, inv * (w?[ch] ?? 1), bb?[ch] ?? 0)
          }
        }
      }
    }
  }

  /// Mean and biased variance of `n` floats in one pass, accumulated relative to `p[0]`.
  @inline(__always)
  static func shiftedMoments(_ p: UnsafePointer<Float>, _ n: Int) -> (Double, Double) {
    typealias V = SIMD8<Float>
    let k = p[0]
    let kv = V(repeating: k)
    var s1: Double = 0
    var s2: Double = 0
    var i = 0
    let block = 512
    while i + 8 <= n {
      let end = min(n, i + block) & ~7
      var a1 = V(repeating: 0)
      var a2 = V(repeating: 0)
      var b1 = V(repeating: 0)
      var b2 = V(repeating: 0)
      while i + 16 <= end {
        let d = FastMath.load(p + i) - kv
        let e = FastMath.load(p + i + 8) - kv
        a1 += d
        a2 += d * d
        b1 += e
        b2 += e * e
        i += 16
      }
      if i + 8 <= end {
        let d = FastMath.load(p + i) - kv
        a1 += d
        a2 += d * d
        i += 8
      }
      s1 += Double((a1 + b1).sum())
      s2 += Double((a2 + b2).sum())
    }
    while i < n {
      let d = Double(p[i] - k)
      s1 += d
      s2 += d * d
      i += 1
    }
    let mean1 = s1 / Double(n)
    let variance = max(0, s2 / Double(n) - mean1 * mean1)
    return (Double(k) + mean1, variance)
  }

  /// `dst[i] = (src[i] − center)·scale + shift` for `n` floats. Subtracting the mean first (instead of
  /// folding it into the shift) keeps the result accurate when the mean is large against the spread.
  @inline(__always)
  static func centeredAffineRow(
    _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ center: Float, _ scale: Float,
    _ shift: Float
  ) {
    let cv = SIMD8<Float>(repeating: center)
    let sv = SIMD8<Float>(repeating: scale)
    let tv = SIMD8<Float>(repeating: shift)
    var i = 0
    while i + 8 <= n {
      FastMath.store((FastMath.load(src + i) - cv) * sv + tv, dst + i)
      i += 8
    }
    while i < n {
      dst[i] = (src[i] - center) * scale + shift
      i += 1
    }
  }

  /// `dst[i] = src[i]·scale + shift` for `n` floats.
  @inline(__always)
  static func affineRow(
    _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ scale: Float, _ shift: Float
  ) {
    let sv = SIMD8<Float>(repeating: scale)
    let tv = SIMD8<Float>(repeating: shift)
    var i = 0
    while i + 8 <= n {
      FastMath.store(FastMath.load(src + i) * sv + tv, dst + i)
      i += 8
    }
    while i < n {
      dst[i] = src[i] * scale + shift
      i += 1
    }
  }

  /// LayerNorm over the last axis.
  public static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor {
    let d = try lastAxisGeometry("layerNorm", x, weight, bias)
    let w = weight?.data
    let bb = bias?.data
    return rowwise(x, d) { src, dst in
      let (mean, variance) = shiftedMoments(src, d)
      let inv = Float(1 / (variance + Double(eps)).squareRoot())
      let m = Float(mean)
      centeredAffineRow(src, dst, d, m, inv, 0)
      if let w { mulRow(dst, w, d) }
      if let bb { addRow(dst, bb, d) }
    }
  }

  /// T5's RMSNorm over the last axis (no mean subtraction, no bias).
  public static func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor {
    let d = try lastAxisGeometry("rmsNorm", x, weight, nil)
    let w = weight?.data
    return rowwise(x, d) { src, dst in
      var acc = SIMD8<Float>(repeating: 0)
      var i = 0
      var ms: Double = 0
      while i + 8 <= d {
        let v: SIMD8<Float> = FastMath.load(src + i)
        acc += v * v
        i += 8
        if i & 511 == 0 {
          ms += Double(acc.sum())
          acc = .init(repeating: 0)
        }
      }
      ms += Double(acc.sum())
      while i < d {
        ms += Double(src[i]) * Double(src[i])
        i += 1
      }
      let inv = Float(1 / (ms / Double(d) + Double(eps)).squareRoot())
      affineRow(src, dst, d, inv, 0)
      if let w { mulRow(dst, w, d) }
    }
  }

  @inline(__always)
  static func mulRow(_ dst: UnsafeMutablePointer<Float>, _ w: [Float], _ d: Int) {
    w.withUnsafeBufferPointer { pw in
      let p = pw.baseAddress!
      var i = 0
      while i + 8 <= d {
        FastMath.store(FastMath.load(dst + i) * FastMath.load(p + i) as SIMD8<Float>, dst + i)
        i += 8
      }
      while i < d {
        dst[i] *= p[i]
        i += 1
      }
    }
  }

  @inline(__always)
  static func addRow(_ dst: UnsafeMutablePointer<Float>, _ w: [Float], _ d: Int) {
    w.withUnsafeBufferPointer { pw in
      let p = pw.baseAddress!
      var i = 0
      while i + 8 <= d {
        FastMath.store(FastMath.load(dst + i) + FastMath.load(p + i) as SIMD8<Float>, dst + i)
        i += 8
      }
      while i < d {
        dst[i] += p[i]
        i += 1
      }
    }
  }

  /// SiLU x·σ(x).
  public static func silu(_ x: Tensor) -> Tensor { vectorMap(x) { FastMath.silu($0) } }
  /// SiLU in place (no new buffer: the UNet applies it to GroupNorm outputs it owns).
  public static func siluInPlace(_ x: inout Tensor) {
    x.withUnsafeMutableBufferPointer { px in
      guard let d = px.baseAddress else { return }
      Parallel.forRange(px.count, minChunk: 16384) { r in
        FastMath.map(d + r.lowerBound, d + r.lowerBound, r.count) { FastMath.silu($0) }
      }
    }
  }
  /// GELU, exact erf form.
  public static func gelu(_ x: Tensor) -> Tensor { vectorMap(x) { FastMath.gelu($0) } }
  /// GELU, tanh approximation (`gelu_new`).
  public static func geluTanh(_ x: Tensor) -> Tensor { vectorMap(x) { FastMath.geluTanh($0) } }

  /// GEGLU: value is the first half of the last axis, gate the second; value · GELU_erf(gate).
  /// One pass: reads both halves once and writes the product.
  public static func geglu(_ x: Tensor) throws -> Tensor {
    guard let d2 = x.shape.last, d2 % 2 == 0 else {
      throw TensorError.shapeMismatch(op: "geglu", shapes: [x.shape], detail: "last axis must be even")
    }
    let d = d2 / 2
    let rows = d2 == 0 ? 0 : x.count / d2
    return x.withUnsafeBufferPointer { px in
      Tensor(uninitializedShape: Array(x.shape.dropLast()) + [d]) { po in
        guard let src = px.baseAddress, let dst = po.baseAddress, d > 0 else { return }
        Parallel.forRange(rows, minChunk: max(1, 16384 / d)) { r in
          for row in r {
            let v = src + row * d2
            let g = v + d
            let o = dst + row * d
            let w = FastMath.width
            var i = 0
            while i + w <= d {
              FastMath.store(FastMath.load(v + i) * FastMath.gelu(FastMath.load(g + i)), o + i)
              i += w
            }
            if i < d {
              var gv = FastMath.V(repeating: 0)
              for j in 0..<(d - i) { gv[j] = g[i + j] }
              let r = FastMath.gelu(gv)
              for j in 0..<(d - i) { o[i + j] = v[i + j] * r[j] }
            }
          }
        }
      }
    }
  }

  /// Softmax over the last axis.
  public static func softmax(_ x: Tensor) -> Tensor {
    guard let d = x.shape.last, d > 0 else { return x }
    return rowwise(x, d) { src, dst in
      let s = expShifted(src, dst, d, 1)
      affineRow(dst, dst, d, 1 / s, 0)
    }
  }

  /// `dst[i] = exp(src[i]·scale − max)` where max is the largest `src[i]·scale`; returns the sum.
  /// A row of −∞ gives zeros and a sum of 0.
  @inline(__always)
  static func expShifted(
    _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ d: Int, _ scale: Float
  ) -> Float {
    typealias V = FastMath.V
    let w = V.scalarCount
    var mv = V(repeating: -.infinity)
    var i = 0
    while i + w <= d {
      mv = FastMath.max(mv, FastMath.load(src + i))
      i += w
    }
    var m = mv.max()
    while i < d {
      m = max(m, src[i])
      i += 1
    }
    m *= scale
    if m == -.infinity {
      dst.update(repeating: 0, count: d)
      return 0
    }
    let sv = V(repeating: scale)
    let shift = V(repeating: m)
    var acc = V(repeating: 0)
    i = 0
    while i + w <= d {
      let e = FastMath.exp(FastMath.fma(FastMath.load(src + i), sv, -shift))
      FastMath.store(e, dst + i)
      acc += e
      i += w
    }
    var sum = acc.sum()
    if i < d {
      var t = V(repeating: -.infinity)
      for j in 0..<(d - i) { t[j] = src[i + j] * scale - m }
      let e = FastMath.exp(t)
      for j in 0..<(d - i) {
        dst[i + j] = e[j]
        sum += e[j]
      }
    }
    return sum
  }

  /// Bytes of one attention score tile (`rows × Tk` floats, per worker): the scores should stay in
  /// cache while being exponentiated, but each GEMM call also repacks the head's keys or values
  /// (`Tk × D`), so the tile must be tall enough to amortize that (4 MB = 256 rows at 4096 tokens).
  nonisolated(unsafe) public static var attentionTileBytes = 4 << 20

  /// Multi-head attention on `[B, Tq, H·D]` / `[B, Tk, H·D]`, computed `queryChunk` query rows at a time
  /// so that at most `queryChunk × Tk` scores exist per worker; `bias` `[H, Tq, Tk]` is added to the scores.
  ///
  /// Work items (batch, head, query tile) are spread over `Parallel` workers, each running
  /// single-threaded GEMMs on its own scratch: S = q·kᵀ·scale (+ bias), S ← exp(S − rowmax),
  /// O = S·v, and O's rows are divided by the row sums at the end (Tq·D work instead of Tq·Tk).
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
    guard g.batch > 0, g.tq > 0, g.headDim > 0 else { return out }
    let tk = g.tk
    if tk == 0 { return out }
    // At least 128 rows: every GEMM repacks the head's Tk×D keys or values, a cost per tile that only
    // tall tiles amortize (with long sequences, e.g. the VAE's 16384 tokens, that beats cache fit).
    let tile = max(1, min(queryChunk, g.tq, max(128, attentionTileBytes / (4 * tk))))
    let tilesPerHead = (g.tq + tile - 1) / tile
    let tasks = g.batch * heads * tilesPerHead
    let width = g.width
    let hd = g.headDim
    q.withUnsafeBufferPointer { pq in
      k.withUnsafeBufferPointer { pk in
        v.withUnsafeBufferPointer { pv in
          out.withUnsafeMutableBufferPointer { po in
            let qb = pq.baseAddress!
            let kb = pk.baseAddress!
            let vb = pv.baseAddress!
            let ob = po.baseAddress!
            let biasBase = bias?.data
            let work = { (range: Range<Int>) in
              let scores = UnsafeMutablePointer<Float>.allocate(capacity: tile * tk)
              let sums = UnsafeMutablePointer<Float>.allocate(capacity: tile)
              defer {
                scores.deallocate()
                sums.deallocate()
              }
              for task in range {
                let t = task % tilesPerHead
                let h = (task / tilesPerHead) % heads
                let b = task / (tilesPerHead * heads)
                let i0 = t * tile
                let rows = min(tile, g.tq - i0)
                let qp = qb + (b * g.tq + i0) * width + h * hd
                let kp = kb + b * tk * width + h * hd
                let vp = vb + b * tk * width + h * hd
                let op = ob + (b * g.tq + i0) * width + h * hd
                if let biasBase {
                  // S = bias, then S += scale·q·kᵀ; the exp pass then needs no scale.
                  biasBase.withUnsafeBufferPointer { pb in
                    scores.update(from: pb.baseAddress! + (h * g.tq + i0) * tk, count: rows * tk)
                  }
                  sgemm(
                    transposeA: false, transposeB: true, m: rows, n: tk, k: hd, a: qp, lda: width, b: kp,
                    ldb: width, c: scores, ldc: tk, alpha: sc, beta: 1)
                  for r in 0..<rows { sums[r] = expShifted(scores + r * tk, scores + r * tk, tk, 1) }
                } else {
                  sgemm(
                    transposeA: false, transposeB: true, m: rows, n: tk, k: hd, a: qp, lda: width, b: kp,
                    ldb: width, c: scores, ldc: tk)
                  for r in 0..<rows { sums[r] = expShifted(scores + r * tk, scores + r * tk, tk, sc) }
                }
                sgemm(
                  transposeA: false, transposeB: false, m: rows, n: hd, k: tk, a: scores, lda: tk, b: vp,
                  ldb: width, c: op, ldc: width)
                for r in 0..<rows {
                  // A fully masked row (all scores −∞) has sum 0; PyTorch gives NaN there, we give 0.
                  let inv: Float = sums[r] > 0 ? 1 / sums[r] : 0
                  let row = op + r * width
                  for j in 0..<hd { row[j] *= inv }
                }
              }
            }
            if Parallel.threadCount > 1 && tasks > 1 {
              Parallel.withSingleThreadedBLAS { Parallel.forWorkers(tasks) { _, range in work(range) } }
            } else {
              work(0..<tasks)
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

  /// Applies a SIMD function to every element, in parallel chunks.
  @inline(__always)
  static func vectorMap(_ x: Tensor, _ f: @escaping (FastMath.V) -> FastMath.V) -> Tensor {
    x.withUnsafeBufferPointer { px in
      Tensor(uninitializedShape: x.shape) { po in
        guard let src = px.baseAddress, let dst = po.baseAddress else { return }
        Parallel.forRange(x.count, minChunk: 16384) { r in
          FastMath.map(src + r.lowerBound, dst + r.lowerBound, r.count, f)
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
