import Foundation

/// Elementwise arithmetic with NumPy/PyTorch broadcasting, and the shape operations the models need.
extension Ops {
  /// The broadcast shape of two shapes (trailing axes aligned; 1 stretches).
  public static func broadcastShape(_ a: [Int], _ b: [Int], op: String = "broadcast") throws -> [Int] {
    let n = max(a.count, b.count)
    var out = [Int](repeating: 1, count: n)
    for i in 0..<n {
      let da = i < n - a.count ? 1 : a[i - (n - a.count)]
      let db = i < n - b.count ? 1 : b[i - (n - b.count)]
      guard da == db || da == 1 || db == 1 else {
        throw TensorError.shapeMismatch(op: op, shapes: [a, b], detail: "axis \(i) has \(da) and \(db)")
      }
      out[i] = da == 1 ? db : da
    }
    return out
  }

  /// `a + b` with broadcasting.
  public static func add(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary("add", a, b, .add) }
  /// `a − b` with broadcasting.
  public static func sub(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary("sub", a, b, .sub) }
  /// `a · b` with broadcasting.
  public static func mul(_ a: Tensor, _ b: Tensor) throws -> Tensor { try binary("mul", a, b, .mul) }

  /// `x · s + t` elementwise.
  public static func affine(_ x: Tensor, scale s: Float, shift t: Float = 0) -> Tensor {
    let sv = FastMath.V(repeating: s)
    let tv = FastMath.V(repeating: t)
    return vectorMap(x) { $0 * sv + tv }
  }

  /// `x` clamped to `[lo, hi]` (NaN stays NaN).
  public static func clamp(_ x: Tensor, _ lo: Float, _ hi: Float) -> Tensor {
    let lv = FastMath.V(repeating: lo)
    let hv = FastMath.V(repeating: hi)
    return vectorMap(x) { FastMath.min(FastMath.max($0, lv), hv) }
  }

  enum BinaryOp {
    case add, sub, mul

    @inline(__always)
    func apply(_ x: SIMD8<Float>, _ y: SIMD8<Float>) -> SIMD8<Float> {
      switch self {
      case .add: return x + y
      case .sub: return x - y
      case .mul: return x * y
      }
    }

    @inline(__always)
    func apply(_ x: Float, _ y: Float) -> Float {
      switch self {
      case .add: return x + y
      case .sub: return x - y
      case .mul: return x * y
      }
    }
  }

  /// `d[i] = op(x[i·sx], y[i·sy])` for `n` elements with strides 0 or 1 (the broadcast patterns).
  @inline(__always)
  static func binaryRun(
    _ op: BinaryOp, _ x: UnsafePointer<Float>, _ sx: Int, _ y: UnsafePointer<Float>, _ sy: Int,
    _ d: UnsafeMutablePointer<Float>, _ n: Int
  ) {
    var i = 0
    switch (sx, sy) {
    case (1, 1):
      while i + 8 <= n {
        FastMath.store(op.apply(FastMath.load(x + i), FastMath.load(y + i)), d + i)
        i += 8
      }
    case (1, 0):
      let yv = SIMD8<Float>(repeating: y[0])
      while i + 8 <= n {
        FastMath.store(op.apply(FastMath.load(x + i), yv), d + i)
        i += 8
      }
    case (0, 1):
      let xv = SIMD8<Float>(repeating: x[0])
      while i + 8 <= n {
        FastMath.store(op.apply(xv, FastMath.load(y + i)), d + i)
        i += 8
      }
    default:
      break
    }
    while i < n {
      d[i] = op.apply(x[i * sx], y[i * sy])
      i += 1
    }
  }

  static func binary(_ op: String, _ a: Tensor, _ b: Tensor, _ kind: BinaryOp) throws -> Tensor {
    if a.shape == b.shape {
      return a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
          Tensor(uninitializedShape: a.shape) { po in
            guard let x = pa.baseAddress, let y = pb.baseAddress, let d = po.baseAddress else { return }
            Parallel.forRange(a.count, minChunk: 32768) { r in
              let lo = r.lowerBound
              binaryRun(kind, x + lo, 1, y + lo, 1, d + lo, r.count)
            }
          }
        }
      }
    }
    let shape = try broadcastShape(a.shape, b.shape, op: op)
    let sa = broadcastStrides(a.shape, to: shape)
    let sb = broadcastStrides(b.shape, to: shape)
    let inner = shape.last ?? 1
    let rows = shape.elementCount / max(inner, 1)
    let ia = sa.last ?? 0
    let ib = sb.last ?? 0
    return a.withUnsafeBufferPointer { pa in
      b.withUnsafeBufferPointer { pb in
        Tensor(uninitializedShape: shape) { po in
          guard let x = pa.baseAddress, let y = pb.baseAddress, let d = po.baseAddress, inner > 0 else { return }
          Parallel.forRange(rows, minChunk: max(1, 32768 / inner)) { r in
            for row in r {
              var oa = 0
              var ob = 0
              var rem = row
              for axis in stride(from: shape.count - 2, through: 0, by: -1) {
                let idx = rem % shape[axis]
                rem /= shape[axis]
                oa += idx * sa[axis]
                ob += idx * sb[axis]
              }
              binaryRun(kind, x + oa, ia, y + ob, ib, d + row * inner, inner)
            }
          }
        }
      }
    }
  }

  /// Element strides of `shape` seen as `target` (0 on broadcast axes).
  static func broadcastStrides(_ shape: [Int], to target: [Int]) -> [Int] {
    var strides = [Int](repeating: 0, count: target.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
      let t = i + target.count - shape.count
      strides[t] = shape[i] == 1 ? 0 : s
      s *= shape[i]
    }
    return strides
  }

  /// `x` materialized at a broadcast-compatible larger shape.
  public static func broadcast(_ x: Tensor, to shape: [Int]) throws -> Tensor {
    let s = try broadcastShape(x.shape, shape, op: "broadcast")
    guard s == shape else {
      throw TensorError.shapeMismatch(
        op: "broadcast", shapes: [x.shape, shape], detail: "cannot broadcast to the target")
    }
    return try add(x, Tensor(zeros: shape))
  }

  /// Concatenation along `axis`; all other axes must agree.
  public static func concat(_ parts: [Tensor], axis: Int) throws -> Tensor {
    guard let first = parts.first else {
      throw TensorError.invalidArgument(op: "concat", detail: "nothing to concatenate")
    }
    guard axis >= 0, axis < first.rank else {
      throw TensorError.invalidArgument(op: "concat", detail: "axis \(axis) out of range for rank \(first.rank)")
    }
    for p in parts {
      var a = p.shape
      var b = first.shape
      guard a.count == b.count else {
        throw TensorError.shapeMismatch(op: "concat", shapes: [first.shape, p.shape], detail: "ranks differ")
      }
      a[axis] = 0
      b[axis] = 0
      try require(a == b, "concat", [first.shape, p.shape], "axes other than \(axis) differ")
    }
    var shape = first.shape
    shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
    let outer = first.shape.prefix(axis).reduce(1, *)
    let innerOut = shape.suffix(from: axis).reduce(1, *)
    var out = [Float]()
    out.reserveCapacity(shape.elementCount)
    for o in 0..<outer {
      for p in parts {
        let n = p.shape.suffix(from: axis).reduce(1, *)
        out.append(contentsOf: p.data[(o * n)..<((o + 1) * n)])
      }
    }
    _ = innerOut
    return try Tensor(shape: shape, data: out)
  }

  /// Splits along `axis` into pieces of the given sizes (which must add up to the axis extent).
  public static func split(_ x: Tensor, axis: Int, sizes: [Int]) throws -> [Tensor] {
    guard axis >= 0, axis < x.rank else {
      throw TensorError.invalidArgument(op: "split", detail: "axis \(axis) out of range for rank \(x.rank)")
    }
    try require(
      sizes.reduce(0, +) == x.shape[axis] && sizes.allSatisfy { $0 >= 0 }, "split", [x.shape, sizes],
      "sizes must add up to \(x.shape[axis])")
    let outer = x.shape.prefix(axis).reduce(1, *)
    let inner = x.shape.suffix(from: axis + 1).reduce(1, *)
    let full = x.shape[axis] * inner
    var start = 0
    return try sizes.map { size in
      var shape = x.shape
      shape[axis] = size
      var data = [Float]()
      data.reserveCapacity(outer * size * inner)
      for o in 0..<outer {
        let lo = o * full + start * inner
        data.append(contentsOf: x.data[lo..<(lo + size * inner)])
      }
      start += size
      return try Tensor(shape: shape, data: data)
    }
  }

  /// Axis permutation: output axis i is input axis `dims[i]`.
  public static func permute(_ x: Tensor, _ dims: [Int]) throws -> Tensor {
    guard dims.sorted() == Array(0..<x.rank) else {
      throw TensorError.invalidArgument(op: "permute", detail: "\(dims) is not a permutation of 0..<\(x.rank)")
    }
    let outShape = dims.map { x.shape[$0] }
    var inStrides = [Int](repeating: 1, count: x.rank)
    for i in stride(from: x.rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * x.shape[i + 1] }
    let strides = dims.map { inStrides[$0] }
    let inner = outShape.last ?? 1
    let innerStride = strides.last ?? 1
    let rows = outShape.elementCount / max(inner, 1)
    return x.withUnsafeBufferPointer { px in
      Tensor(uninitializedShape: outShape) { po in
        guard let src = px.baseAddress, let dst = po.baseAddress else { return }
        Parallel.forRange(rows, minChunk: max(1, 16384 / max(inner, 1))) { r in
          for row in r {
            var off = 0
            var rem = row
            for axis in stride(from: outShape.count - 2, through: 0, by: -1) {
              off += (rem % outShape[axis]) * strides[axis]
              rem /= outShape[axis]
            }
            let d = dst + row * inner
            for i in 0..<inner { d[i] = src[off + i * innerStride] }
          }
        }
      }
    }
  }
}
