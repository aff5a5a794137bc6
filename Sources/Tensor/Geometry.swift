/// Shape checks shared by the fast kernels and their naive twins, so both reject the same inputs
/// with the same typed errors.

struct MatmulGeometry {
  let batch: Int, m: Int, k: Int, n: Int
  let bBatched: Bool
  let outShape: [Int]

  init(_ a: [Int], _ b: [Int], transposeA: Bool, transposeB: Bool) throws {
    let op = "matmul"
    try require(a.count >= 2 && b.count >= 2, op, [a, b], "both operands need at least 2 dimensions")
    let m = transposeA ? a[a.count - 1] : a[a.count - 2]
    let ka = transposeA ? a[a.count - 2] : a[a.count - 1]
    let kb = transposeB ? b[b.count - 1] : b[b.count - 2]
    let n = transposeB ? b[b.count - 2] : b[b.count - 1]
    try require(ka == kb, op, [a, b], "inner dimensions \(ka) and \(kb) differ")
    let aBatch = Array(a.dropLast(2))
    let bBatch = Array(b.dropLast(2))
    try require(
      bBatch.isEmpty || bBatch == aBatch, op, [a, b],
      "batch dimensions must be equal, or the right operand rank 2")
    self.batch = aBatch.elementCount
    self.m = m
    self.k = ka
    self.n = n
    self.bBatched = !bBatch.isEmpty
    self.outShape = aBatch + [m, n]
  }
}

func linearGeometry(_ x: Tensor, _ weight: Tensor, _ bias: Tensor?) throws -> (rows: Int, inF: Int, outF: Int) {
  let op = "linear"
  try require(weight.rank == 2, op, [x.shape, weight.shape], "weight must be [out, in]")
  try require(
    x.rank >= 1 && x.shape.last == weight.shape[1], op, [x.shape, weight.shape],
    "input's last axis must equal the weight's in-features \(weight.shape[1])")
  if let bias {
    try require(bias.shape == [weight.shape[0]], op, [weight.shape, bias.shape], "bias must be [out]")
  }
  // Rows from the leading axes, not count / in: with in = 0 the output still has rows (of bias).
  return (x.shape.dropLast().reduce(1, *), weight.shape[1], weight.shape[0])
}

struct ConvGeometry {
  let batch: Int, inC: Int, inH: Int, inW: Int
  let outC: Int, kh: Int, kw: Int, outH: Int, outW: Int

  init(_ x: [Int], _ w: [Int], _ bias: [Int]?, stride: Int, padding: Padding2D) throws {
    let op = "conv2d"
    try require(x.count == 4, op, [x, w], "input must be [B, C, H, W]")
    try require(w.count == 4, op, [x, w], "weight must be [O, C, kh, kw]")
    try require(x[1] == w[1], op, [x, w], "input has \(x[1]) channels, weight expects \(w[1])")
    if let bias { try require(bias == [w[0]], op, [w, bias], "bias must be [O]") }
    guard stride >= 1, padding.top >= 0, padding.bottom >= 0, padding.left >= 0, padding.right >= 0 else {
      throw TensorError.invalidArgument(
        op: op, detail: "stride \(stride) and padding \(padding) must be non-negative (stride ≥ 1)")
    }
    batch = x[0]
    inC = x[1]
    inH = x[2]
    inW = x[3]
    outC = w[0]
    kh = w[2]
    kw = w[3]
    outH = convOut(inH, kernel: kh, stride: stride, padLo: padding.top, padHi: padding.bottom)
    outW = convOut(inW, kernel: kw, stride: stride, padLo: padding.left, padHi: padding.right)
    try require(outH > 0 && outW > 0, op, [x, w], "the padded input is smaller than the kernel")
  }
}

func groupNormGeometry(_ x: Tensor, _ groups: Int, _ weight: Tensor?, _ bias: Tensor?) throws -> (Int, Int, Int) {
  let op = "groupNorm"
  try require(x.rank >= 2, op, [x.shape], "input must be [B, C, ...]")
  let c = x.shape[1]
  guard groups > 0, c % groups == 0 else {
    throw TensorError.invalidArgument(op: op, detail: "\(groups) groups do not divide \(c) channels")
  }
  if let weight { try require(weight.shape == [c], op, [x.shape, weight.shape], "weight must be [C]") }
  if let bias { try require(bias.shape == [c], op, [x.shape, bias.shape], "bias must be [C]") }
  return (x.shape[0], c, x.shape.dropFirst(2).reduce(1, *))
}

func lastAxisGeometry(_ op: String, _ x: Tensor, _ weight: Tensor?, _ bias: Tensor?) throws -> Int {
  try require(x.rank >= 1, op, [x.shape], "input needs at least one axis")
  let d = x.shape[x.rank - 1]
  if let weight { try require(weight.shape == [d], op, [x.shape, weight.shape], "weight must be [\(d)]") }
  if let bias { try require(bias.shape == [d], op, [x.shape, bias.shape], "bias must be [\(d)]") }
  return d
}

struct AttentionGeometry {
  let batch: Int, tq: Int, tk: Int, width: Int, headDim: Int

  init(_ q: [Int], _ k: [Int], _ v: [Int], heads: Int, bias: [Int]?) throws {
    let op = "attention"
    try require(q.count == 3 && k.count == 3 && v.count == 3, op, [q, k, v], "q, k, v must be [B, T, H·D]")
    try require(k == v, op, [k, v], "keys and values must have the same shape")
    try require(q[0] == k[0] && q[2] == k[2], op, [q, k], "batch and width of q and k must agree")
    guard heads > 0, q[2] % heads == 0 else {
      throw TensorError.invalidArgument(op: op, detail: "\(heads) heads do not divide width \(q[2])")
    }
    batch = q[0]
    tq = q[1]
    tk = k[1]
    width = q[2]
    headDim = q[2] / heads
    if let bias {
      try require(bias == [heads, tq, tk], op, [bias, [heads, tq, tk]], "bias must be [H, Tq, Tk]")
    }
  }
}

func imageGeometry(_ op: String, _ x: Tensor) throws -> (planes: Int, h: Int, w: Int) {
  try require(x.rank >= 3, op, [x.shape], "input must be [..., H, W] with at least 3 axes")
  let h = x.shape[x.rank - 2]
  let w = x.shape[x.rank - 1]
  try require(h > 0 && w > 0, op, [x.shape], "empty image")
  return (x.count / (h * w), h, w)
}
