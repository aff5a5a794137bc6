#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A seeded generator that reproduces PyTorch's CPU default generator value for value:
/// `TorchGenerator(seed: s).randn(shape)` equals `torch.manual_seed(s); torch.randn(shape)` (float32),
/// `rand` equals `torch.rand`, and consecutive calls continue the stream exactly as torch does
/// (including the cached second normal sample of the small-tensor path).
///
/// What it reproduces (read from PyTorch 2.15, re-implemented here):
/// - the engine: MT19937 seeded with the low 32 bits of the seed (aten/src/ATen/core/MT19937RNGEngine.h);
///   64-bit draws are two 32-bit draws, first one high (aten/src/ATen/CPUGeneratorImpl.cpp, random64);
/// - `rand`: one 32-bit draw per element, its low 24 bits times 2⁻²⁴
///   (aten/src/ATen/core/TransformationHelper.h, uniform_real);
/// - `randn` with fewer than 16 elements: double-precision Box–Muller on two 53-bit uniforms per pair, the sine
///   sample cached in the generator for the next element, even across calls
///   (aten/src/ATen/core/DistributionsHelper.h, normal_distribution);
/// - `randn` with 16 or more elements: all elements first filled with 24-bit uniforms, then float32
///   Box–Muller on blocks of 16 (first 8 give the radius, last 8 the angle), and when the count is not a
///   multiple of 16 the last 16 elements recomputed from 16 fresh uniforms
///   (aten/src/ATen/native/cpu/DistributionTemplates.h, normal_fill). This path never touches the cache.
///
/// The float32 Box–Muller of the large path depends on the CPU torch runs on; `NormalKernel` selects which
/// one is reproduced. The small path calls the C library's double `log1p`, `sin` and `cos`, as torch does;
/// a last-bit difference there between C libraries would rarely survive the rounding to float32.
/// Not reproduced: mean/std other than 0/1, float64 or half outputs, CUDA generators.
public struct TorchGenerator: Sendable {
  /// The float32 Box–Muller kernel torch uses for `randn` of 16 or more elements.
  public enum NormalKernel: Sendable, Hashable {
    /// x86-64 CPUs with AVX2 or AVX-512 (PyTorch's AVX-512 build dispatches `normal` to its AVX2 kernel):
    /// Cephes-style polynomial log and sincos in float32 with the FMAs GCC fuses into them
    /// (aten/src/ATen/native/cpu/avx_mathfun.h). The default, and what x86 machines running PyTorch produce.
    /// Emulated with IEEE operations only (fused multiply-add, square root), so it gives the same noise on
    /// every host, ARM included.
    case avx2
    /// PyTorch's portable kernel (CPUs without AVX2, `ATEN_CPU_CAPABILITY=default`): the C library's
    /// `logf`, `cosf` and `sinf` per element. Bit-exact only against a torch that uses the same C library.
    case scalar
  }

  /// The seed this generator was created with (all 64 bits, as `torch.initial_seed()` reports it).
  public let seed: UInt64
  /// Which float32 Box–Muller kernel `randn` reproduces for tensors of 16 or more elements.
  public var normalKernel: NormalKernel

  private var engine: MersenneTwister
  /// Box–Muller's second (sine) sample of the small-tensor path, kept for the next small-tensor element.
  private var cachedNormal: Double?

  /// A generator in the state `torch.manual_seed(seed)` leaves the CPU generator in. Only the low 32 bits
  /// seed the engine, so seeds that differ above bit 31 give the same numbers, as in torch.
  public init(seed: UInt64, normalKernel: NormalKernel = .avx2) {
    self.seed = seed
    self.normalKernel = normalKernel
    self.engine = MersenneTwister(seed: UInt32(truncatingIfNeeded: seed))
    self.cachedNormal = nil
  }

  /// The next raw 32-bit output of the engine (torch's `random()`).
  public mutating func nextUInt32() -> UInt32 {
    engine.next()
  }

  /// The next 64-bit value made of two 32-bit outputs, the first in the high half (torch's `random64()`).
  public mutating func nextUInt64() -> UInt64 {
    let high = UInt64(engine.next())
    let low = UInt64(engine.next())
    return high << 32 | low
  }

  /// Samples of the standard normal distribution, as `torch.randn(shape)` in float32 on the CPU.
  /// Negative extents are treated as zero: nothing is drawn and the tensor holds no elements.
  public mutating func randn(_ shape: [Int]) -> Tensor {
    let shape = shape.map { max($0, 0) }
    let n = shape.elementCount
    let kernel = normalKernel
    return Tensor(uninitializedShape: shape) { out in
      if n >= 16 {
        engine.fillUniformFloats(out)
        // Blocks are independent once the uniforms are drawn, so they may run on all threads.
        let base = out.baseAddress!
        Parallel.forRange(n / 16, minChunk: 512) { blocks in
          for block in blocks { Self.boxMuller16(base + 16 * block, kernel: kernel) }
        }
        if n % 16 != 0 {
          // Torch redraws the last 16 elements from fresh uniforms rather than handling a partial block.
          let tail = UnsafeMutableBufferPointer(rebasing: out[(n - 16)...])
          engine.fillUniformFloats(tail)
          Self.boxMuller16(tail.baseAddress!, kernel: kernel)
        }
      } else {
        for i in 0..<n { out[i] = Float(nextNormalDouble()) }
      }
    }
  }

  /// Samples of the uniform distribution on [0, 1), as `torch.rand(shape)` in float32 on the CPU.
  /// Negative extents are treated as zero: nothing is drawn and the tensor holds no elements.
  public mutating func rand(_ shape: [Int]) -> Tensor {
    let shape = shape.map { max($0, 0) }
    return Tensor(uninitializedShape: shape) { out in engine.fillUniformFloats(out) }
  }

  /// One standard normal sample of torch's small-tensor path (double precision, second sample cached).
  mutating func nextNormalDouble() -> Double {
    if let cached = cachedNormal {
      cachedNormal = nil
      return cached
    }
    let u1 = uniformDouble()
    let u2 = uniformDouble()
    let radius = (-2.0 * log1p(-u2)).squareRoot()
    let theta = 2.0 * Double.pi * u1
    cachedNormal = radius * sin(theta)
    return radius * cos(theta)
  }

  /// A uniform double in [0, 1) from the low 53 bits of a 64-bit draw.
  private mutating func uniformDouble() -> Double {
    Double(nextUInt64() & ((1 << 53) - 1)) * 0x1p-53
  }

  /// Box–Muller on 16 uniforms in place: lanes 0..<8 become r·cos θ, lanes 8..<16 become r·sin θ, with
  /// r = √(−2 ln(1 − u[j])) and θ = 2π·u[j + 8].
  static func boxMuller16(_ p: UnsafeMutablePointer<Float>, kernel: NormalKernel) {
    switch kernel {
    case .avx2:
      for j in 0..<8 {
        let radius = (-2 * CephesFloat.log(1 - p[j])).squareRoot()
        let (sine, cosine) = CephesFloat.sinCos(CephesFloat.twoPi * p[j + 8])
        // Torch ends with fma(n, std = 1, mean = 0), which is n + 0: it turns a −0 into +0.
        p[j] = radius * cosine + 0
        p[j + 8] = radius * sine + 0
      }
    case .scalar:
      for j in 0..<8 {
        let radius = (-2 * logf(1 - p[j])).squareRoot()
        // The angle is computed in double (2π is a double constant there) and rounded to float.
        let theta = Float(2 * Double.pi * Double(p[j + 8]))
        p[j] = radius * cosf(theta) + 0
        p[j + 8] = radius * sinf(theta) + 0
      }
    }
  }
}

/// The 32-bit Mersenne Twister MT19937 (Matsumoto & Nishimura 1998) with its standard 32-bit seeding,
/// as PyTorch's CPU generator runs it (aten/src/ATen/core/MT19937RNGEngine.h).
struct MersenneTwister: Sendable {
  private static let n = 624
  private static let m = 397
  private var state: [UInt32]
  /// Index of the next state word to temper; `n` means the state must be regenerated first.
  private var index: Int

  init(seed: UInt32) {
    var state = [UInt32](repeating: 0, count: Self.n)
    state[0] = seed
    for j in 1..<Self.n {
      let previous = state[j - 1]
      state[j] = 1_812_433_253 &* (previous ^ (previous >> 30)) &+ UInt32(j)
    }
    self.state = state
    self.index = Self.n
  }

  mutating func next() -> UInt32 {
    if index == Self.n { regenerate() }
    let word = state[index]
    index += 1
    return Self.temper(word)
  }

  /// Fills `out` with torch's float uniforms: the low 24 bits of one draw each, times 2⁻²⁴.
  mutating func fillUniformFloats(_ out: UnsafeMutableBufferPointer<Float>) {
    var i = 0
    while i < out.count {
      if index == Self.n { regenerate() }
      let take = min(Self.n - index, out.count - i)
      state.withUnsafeBufferPointer { words in
        for k in 0..<take {
          out[i + k] = Float(Self.temper(words[index + k]) & 0xFF_FFFF) * 0x1p-24
        }
      }
      index += take
      i += take
    }
  }

  @inline(__always)
  private static func temper(_ word: UInt32) -> UInt32 {
    var y = word
    y ^= y >> 11
    y ^= (y << 7) & 0x9D2C_5680
    y ^= (y << 15) & 0xEFC6_0000
    y ^= y >> 18
    return y
  }

  private mutating func regenerate() {
    state.withUnsafeMutableBufferPointer { s in
      for i in 0..<Self.n {
        let y = (s[i] & 0x8000_0000) | (s[(i + 1) % Self.n] & 0x7FFF_FFFF)
        s[i] = s[(i + Self.m) % Self.n] ^ (y >> 1) ^ ((y & 1) == 0 ? 0 : 0x9908_B0DF)
      }
    }
    index = 0
  }
}

/// PyTorch's AVX2 float32 log and sincos, lane by lane: Cephes polynomials as rewritten in
/// aten/src/ATen/native/cpu/avx_mathfun.h (log256_ps, sincos256_ps, after Pommier's sse_mathfun).
///
/// PyTorch's x86 wheels are built with GCC, which fuses some of those intrinsic multiply/add pairs into
/// FMAs. Which ones was found by comparing every one of the 2²⁴ possible inputs with torch's output
/// (Tests/tools/make_rng_golden.py): the Horner steps, the argument reduction and the final additions
/// are fused; the `addingProduct` calls below are exactly those FMAs, every other operation is rounded
/// on its own. Valid for the inputs Box–Muller gives them: log on [2⁻²⁴, 1], sincos on [0, 2π).
enum CephesFloat {
  /// 2π rounded to float, the angle scale of the AVX2 kernel.
  static let twoPi: Float = 0x1.921fb6p+2

  static func log(_ value: Float) -> Float {
    // Split value = m·2^e with m in [0.5, 1); below √½ use 2m and e − 1 so that x = m − 1 stays small.
    let bits = max(value, Float.leastNormalMagnitude).bitPattern
    var e = Float(Int32(bitPattern: bits >> 23) - 127) + 1
    var x = Float(bitPattern: (bits & ~0x7F80_0000) | 0x3F00_0000)
    let belowSqrtHalf = x < 0x1.6a09e6p-1
    let extra: Float = belowSqrtHalf ? x : 0
    x = x - 1
    e = e - (belowSqrtHalf ? 1 : 0)
    x = x + extra
    let z = x * x
    var y: Float = 0x1.204376p-4  // 7.0376836292e-2
    y = (-0x1.d7a37p-4 as Float).addingProduct(y, x)  // -1.1514610310e-1
    y = (0x1.de4a34p-4 as Float).addingProduct(y, x)  // 1.1676998740e-1
    y = (-0x1.fcba9ep-4 as Float).addingProduct(y, x)  // -1.2420140846e-1
    y = (0x1.23d37ep-3 as Float).addingProduct(y, x)  // 1.4249322787e-1
    y = (-0x1.555ca0p-3 as Float).addingProduct(y, x)  // -1.6668057665e-1
    y = (0x1.999d58p-3 as Float).addingProduct(y, x)  // 2.0000714765e-1
    y = (-0x1.fffff8p-3 as Float).addingProduct(y, x)  // -2.4999993993e-1
    y = (0x1.555554p-2 as Float).addingProduct(y, x)  // 3.3333331174e-1
    y = y * x
    y = (e * -0x1.bd0106p-13).addingProduct(y, z)  // + e·(−2.12194440e-4), the small part of ln 2
    y = y.addingProduct(-z, 0.5)
    x = x + y
    x = x.addingProduct(e, 0x1.63p-1)  // + e·0.693359375, the large part of ln 2
    return x
  }

  /// (sin x, cos x) for x ≥ 0.
  static func sinCos(_ value: Float) -> (sin: Float, cos: Float) {
    // Octant j (made even) of x·4/π, and x reduced by j·π/4 in three parts (Cody–Waite).
    var j = Int32(value * 0x1.45f306p+0)  // 4/π
    j = (j + 1) & ~1
    let y = Float(j)
    var x = value
    x = x.addingProduct(y, -0x1.92p-1)  // -0.78515625
    x = x.addingProduct(y, -0x1.fb4p-13)  // -2.4187564849853515625e-4
    x = x.addingProduct(y, -0x1.4442d2p-25)  // -3.77489497744594108e-8
    let sinSign = (UInt32(bitPattern: j) & 4) << 29
    let cosSign = (~UInt32(bitPattern: j &- 2) & 4) << 29
    let cosFromCosPolynomial = (j & 2) == 0
    let z = x * x
    var c: Float = 0x1.99eb9cp-16  // 2.443315711809948e-5
    c = (-0x1.6c0c34p-10 as Float).addingProduct(c, z)  // -1.388731625493765e-3
    c = (0x1.55554ap-5 as Float).addingProduct(c, z)  // 4.166664568298827e-2
    c = c * z
    c = (-(z * 0.5)).addingProduct(c, z)
    c = c + 1
    var s: Float = -0x1.9943f2p-13  // -1.9515295891e-4
    s = (0x1.11073cp-7 as Float).addingProduct(s, z)  // 8.3321608736e-3
    s = (-0x1.555546p-3 as Float).addingProduct(s, z)  // -1.6666654611e-1
    s = s * z
    s = x.addingProduct(s, x)
    let sine = cosFromCosPolynomial ? s : c
    let cosine = cosFromCosPolynomial ? c : s
    return (Float(bitPattern: sine.bitPattern ^ sinSign), Float(bitPattern: cosine.bitPattern ^ cosSign))
  }
}
