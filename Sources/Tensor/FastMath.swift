/// Vectorized float32 exp, erfc and the activations built on them, sixteen lanes at a time (one AVX-512
/// register, two AVX2 registers or four SSE registers: the wide type also gives the baseline build
/// independent chains to overlap).
///
/// No rounding or float→int conversion instructions are needed (rounding uses the 1.5·2²³ trick), so
/// every step stays in vector registers; polynomials use fused multiply-adds (`addingProduct`), which
/// halve the dependent chain where the target has FMA. Accuracy, checked in `FastMathTests` against Double: exp ≤ 2 ulp; GELU, SiLU and
/// tanh-GELU ≤ ~1e-6 relative (the erfc tail is bounded by float32 rounding of z²).
public enum FastMath {
  public typealias V = SIMD16<Float>
  @usableFromInline typealias VI = SIMD16<Int32>
  @usableFromInline typealias VU = SIMD16<UInt32>
  /// Lanes per vector.
  public static let width = V.scalarCount

  @_transparent @usableFromInline
  static func load<T: SIMD>(_ p: UnsafePointer<Float>) -> T where T.Scalar == Float {
    UnsafeRawPointer(p).loadUnaligned(as: T.self)
  }

  @_transparent @usableFromInline
  static func store<T: SIMD>(_ v: T, _ p: UnsafeMutablePointer<Float>) where T.Scalar == Float {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: T.self)
  }

  /// a·b + c, fused where the build targets FMA hardware (`COGFLOW_FMA`, set by Package.swift with the
  /// native CPU flags; always on arm64). Without it a fused multiply-add is a libm call per lane, so the
  /// baseline build multiplies and adds separately (the kernels' accuracy does not rely on fusion).
  @_transparent @usableFromInline
  static func fma(_ a: V, _ b: V, _ c: V) -> V {
    #if COGFLOW_FMA || arch(arm64)
      c.addingProduct(a, b)
    #else
      a * b + c
    #endif
  }

  /// Lane-wise maximum. The standard library's `pointwiseMax` handles NaN per lane in scalar code;
  /// a compare-and-select stays in vector registers.
  @_transparent
  public static func max(_ a: V, _ b: V) -> V { a.replacing(with: b, where: a .< b) }

  /// Lane-wise minimum (compare-and-select, see `max`).
  @_transparent
  public static func min(_ a: V, _ b: V) -> V { a.replacing(with: b, where: b .< a) }

  /// e^x per lane. Inputs below −87.33 (the smallest normal result) give 0, above 88.37 give +∞.
  @_transparent
  public static func exp(_ x: V) -> V {
    let lo = V(repeating: -87.336)
    let hi = V(repeating: 88.37)
    var y = expInRange(min(max(x, lo), hi))
    y.replace(with: 0, where: x .< lo)
    y.replace(with: .infinity, where: x .> hi)
    return y
  }

  /// e^x for x already in [−87.33, 88.37] (no range handling).
  @_transparent @usableFromInline
  static func expInRange(_ x: V) -> V { expSplit(x, V(repeating: 0)) }

  /// e^(hi + lo) for hi + lo in [−87.33, 88.37], where `hi` is exact and `lo` small: the reduction
  /// r = (hi − n·ln2) + lo never rounds hi + lo to float32, so the result keeps full precision
  /// even when the argument is large (erfc's −z²). Cody–Waite reduction with |r| ≤ ln2/2, the
  /// degree-7 Taylor polynomial of e^r (truncation error < 6e-9), and 2^n built in the exponent bits.
  @_transparent @usableFromInline
  static func expSplit(_ hi: V, _ lo: V) -> V {
    let magic = V(repeating: 12_582_912)  // 1.5·2²³: adding it rounds to an integer
    let shifted = fma(hi + lo, V(repeating: 1.442_695_04), magic)
    let n = shifted - magic
    // ln2 split so that n·ln2Hi is exact for |n| < 2¹⁵ (and hi − n·ln2Hi exact for the erfc use).
    var r = fma(n, V(repeating: -0.693_359_375), hi)
    r = r + lo
    r = fma(n, V(repeating: 2.121_944_4e-4), r)
    var p = V(repeating: 1.0 / 5040)
    p = fma(p, r, V(repeating: 1.0 / 720))
    p = fma(p, r, V(repeating: 1.0 / 120))
    p = fma(p, r, V(repeating: 1.0 / 24))
    p = fma(p, r, V(repeating: 1.0 / 6))
    p = fma(p, r, V(repeating: 0.5))
    p = fma(p, r, V(repeating: 1))
    p = fma(p, r, V(repeating: 1))
    let k =
      unsafeBitCast(shifted, to: VI.self) &- unsafeBitCast(magic, to: VI.self)
    return p * unsafeBitCast((k &+ 127) &<< 23, to: V.self)
  }

  /// erfc(a/√2) for a ≥ 0 per lane (the Gaussian tail 2·(1 − Φ(a))), relative error ≤ ~1e-6.
  ///
  /// With z = a/√2: erfc(z) = t·exp(P(u) − z²), t = 1/(1 + z/2), u = (2t − 8/7)/(6/7) ∈ [−1, 1]. The
  /// t·exp(−z² + P) form is the classic erfc expansion (Numerical Recipes §6.2, erfcc); P is our own
  /// degree-10 least-squares fit on z ∈ [0, 12] (max |error| 4.9e-8 in double). −z² = −a²/2 is split
  /// as −a_hi²/2 (exact, a_hi = a with 12 significant bits) plus a small remainder, so that float32
  /// rounding of z² (up to 1e-6 relative at z = 4) never enters. Beyond a = 9√2 the result stays at
  /// erfc(9) ≈ 4.1e-37 instead of decaying further (no denormals, exp's argument stays ≥ −83).
  @_transparent
  public static func erfcOverSqrt2(_ a: V) -> V {
    let ac = min(a, V(repeating: 12.727_922))  // a ≥ 0 by contract
    let z = ac * V(repeating: 0.707_106_781_186_547_52)
    // u = (2t − 8/7)/(6/7) rewritten as (1 − 2z/3)/(1 + z/2): one division, and LLVM keeps it in
    // vector registers (the 1/x form gets partly scalarized by the optimizer).
    let u = (V(repeating: 1) - V(repeating: 2.0 / 3) * z) / (V(repeating: 1) + V(repeating: 0.5) * z)
    var p = V(repeating: -2.272_584_921_210_107e-05)
    p = fma(p, u, V(repeating: 7.869_429_895_387_987e-05))
    p = fma(p, u, V(repeating: 0.000_126_848_648_682_639_14))
    p = fma(p, u, V(repeating: -0.000_684_444_206_832_977_7))
    p = fma(p, u, V(repeating: -0.000_183_354_643_708_751_14))
    p = fma(p, u, V(repeating: 0.004_311_923_780_846_859))
    p = fma(p, u, V(repeating: -0.001_770_677_913_375_870_6))
    p = fma(p, u, V(repeating: -0.031_906_180_112_616_395))
    p = fma(p, u, V(repeating: 0.019_324_223_850_834_88))
    p = fma(p, u, V(repeating: 0.585_602_052_368_493_7))
    p = fma(p, u, V(repeating: -0.574_876_311_037_671_1))
    let t = (u + V(repeating: 4.0 / 3)) * V(repeating: 3.0 / 7)
    let aHi = unsafeBitCast(unsafeBitCast(ac, to: VU.self) & 0xFFFF_F000, to: V.self)
    let aLo = ac - aHi
    // a² = aHi² + (a + aHi)·aLo exactly; aHi² is exact in float32.
    let hi = V(repeating: -0.5) * aHi * aHi
    let lo = p - V(repeating: 0.5) * (ac + aHi) * aLo
    return t * expSplit(hi, lo)
  }

  /// GELU with the exact erf form: x·Φ(x), Φ(x) = 1 − erfc(x/√2)/2 for x ≥ 0 and erfc(−x/√2)/2 below,
  /// so that the negative tail keeps its relative accuracy.
  @_transparent
  public static func gelu(_ x: V) -> V {
    // |x| and the sign mask by bit operations (cheaper than compare-and-select on SSE2).
    let bits = unsafeBitCast(x, to: VI.self)
    let a = unsafeBitCast(bits & 0x7FFF_FFFF, to: V.self)
    let half = V(repeating: 0.5) * erfcOverSqrt2(a)
    let negative = bits &>> 31  // all ones where x < 0
    let upper = unsafeBitCast(V(repeating: 1) - half, to: VI.self)
    let phi = (unsafeBitCast(half, to: VI.self) & negative) | (upper & ~negative)
    return x * unsafeBitCast(phi, to: V.self)
  }

  /// GELU with the tanh approximation, written as x·σ(2u) (= ½x(1 + tanh u)), u = √(2/π)(x + 0.044715x³),
  /// which stays accurate in the negative tail.
  @_transparent
  public static func geluTanh(_ x: V) -> V {
    let u = V(repeating: 0.797_884_560_802_865_36) * (x + V(repeating: 0.044715) * x * x * x)
    return x / (V(repeating: 1) + exp(V(repeating: -2) * u))
  }

  /// SiLU x·σ(x).
  @_transparent
  public static func silu(_ x: V) -> V {
    x / (V(repeating: 1) + exp(-x))
  }

  /// Applies `f` to `n` floats from `src` into `dst` (which may equal `src`), `width` at a time; the tail
  /// goes through a zero-padded vector.
  @_transparent @usableFromInline
  static func map(
    _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int, _ f: (V) -> V
  ) {
    var i = 0
    while i + width <= n {
      store(f(load(src + i)), dst + i)
      i += width
    }
    if i < n {
      var v = V(repeating: 0)
      for j in 0..<(n - i) { v[j] = src[i + j] }
      let r = f(v)
      for j in 0..<(n - i) { dst[i + j] = r[j] }
    }
  }
}
