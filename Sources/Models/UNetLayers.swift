import Foundation
import ModelIO
import Tensor

// The building blocks shared by the UNet and the autoencoder: weights that stay in their stored dtype
// until used, a binder that names them after the checkpoint keys, and the few layers both networks use.

/// Whether widened (float32) weights are kept after first use.
public enum WeightResidency: String, Codable, Sendable, Hashable {
  /// Widen a layer's weights each time it runs and drop them afterwards: the memory-mapped file
  /// (f16/bf16 as stored) is all that stays, so the 2.9B UNet fits in ~6 GB plus activations.
  case widenPerUse
  /// Keep each weight as float32 after its first use: faster, at 4 bytes per parameter.
  case keepWidened
}

/// One parameter: a stored tensor (usually memory-mapped f16/bf16) widened to float32 on use.
final class LazyWeight: @unchecked Sendable {
  let key: String
  let location: String
  private let stored: StoredTensor?
  private let keep: Bool
  private let pool: WidenPool?
  private var cached: Tensor?
  private let lock = NSLock()

  init(key: String, location: String, stored: StoredTensor?, keep: Bool, pool: WidenPool?) {
    self.key = key
    self.location = location
    self.stored = stored
    self.keep = keep
    self.pool = pool
  }

  /// The weight as float32. Without `keep`, hand it back with `recycle` once the layer is done.
  func value() throws -> Tensor {
    guard let stored else { throw ModelIOError.missingTensor(path: location, key: key) }
    guard keep else {
      guard let pool, var t = pool.checkout(stored.elementCount) else { return try stored.toFloat32() }
      try WidenPool.widen(stored, into: &t)
      return try t.reshaped(stored.shape)
    }
    lock.lock()
    defer { lock.unlock() }
    if let cached { return cached }
    let t = try stored.toFloat32()
    cached = t
    return t
  }

  /// Returns a widened copy to the pool for the next layer of the same size (no-op when kept).
  func recycle(_ t: Tensor) {
    if !keep { pool?.giveBack(t) }
  }
}

/// Float32 buffers reused for widening, by element count: allocating a fresh array per layer costs page
/// faults that, measured on this machine, made widening ~2.6× slower than writing into reused memory
/// (2.9B parameters are widened per UNet pass). Holds at most `capacity` floats.
final class WidenPool: @unchecked Sendable {
  private var free: [Int: [Tensor]] = [:]
  private var held = 0
  private let capacity: Int
  private let lock = NSLock()

  init(capacity: Int = 96 << 20) { self.capacity = capacity }

  /// A buffer of `count` floats whose contents are stale, or nil (allocate instead).
  func checkout(_ count: Int) -> Tensor? {
    lock.lock()
    defer { lock.unlock() }
    guard var list = free[count], let t = list.popLast() else { return nil }
    free[count] = list
    held -= count
    return t
  }

  func giveBack(_ t: Tensor) {
    lock.lock()
    defer { lock.unlock() }
    guard held + t.count <= capacity else { return }
    free[t.count, default: []].append(t)
    held += t.count
  }

  /// Widens `stored` into `t` (same element count).
  static func widen(_ stored: StoredTensor, into t: inout Tensor) throws {
    let n = stored.elementCount
    guard t.count == n else {
      throw TensorError.shapeMismatch(op: "widen", shapes: [stored.shape, t.shape], detail: "element counts differ")
    }
    let src = stored.bytes.baseAddress
    try t.withUnsafeMutableBufferPointer { out in
      guard let dst = out.baseAddress, let src, n > 0 else { return }
      switch stored.dtype {
      case .f32: dst.update(from: src.assumingMemoryBound(to: Float.self), count: n)
      case .f16: HalfConversion.widenF16(src, count: n, into: dst)
      case .bf16: HalfConversion.widenBF16(src, count: n, into: dst)
      default:
        throw TensorError.dtypeMismatch(op: "widen", expected: "F32, F16 or BF16", found: stored.dtype.rawValue)
      }
    }
  }
}

/// Counts the multiply-add work (2 FLOPs each) of GEMM-shaped layers, for `cogflow bench`.
public final class FlopCounter: @unchecked Sendable {
  private var total: Double = 0
  private let lock = NSLock()
  public init() {}
  /// FLOPs counted since the last reset.
  public var flops: Double {
    lock.lock()
    defer { lock.unlock() }
    return total
  }
  public func reset() {
    lock.lock()
    total = 0
    lock.unlock()
  }
  func add(_ n: Double) {
    lock.lock()
    total += n
    lock.unlock()
  }
}

/// Hands out `LazyWeight`s by checkpoint key while recording the expected `[key: shape]`, so that the
/// whole checkpoint is checked at once (`finish`) after the network is built.
final class WeightBinder {
  let source: (any TensorSource)?
  let residency: WeightResidency
  let flops = FlopCounter()
  let pool = WidenPool()
  private(set) var expected: [String: [Int]] = [:]

  /// `source` nil builds the network without weights, to list the expected keys.
  init(source: (any TensorSource)?, residency: WeightResidency) {
    self.source = source
    self.residency = residency
  }

  func weight(_ key: String, _ shape: [Int]) -> LazyWeight {
    expected[key] = shape
    var stored: StoredTensor? = nil
    if let source, let s = try? source.stored(key), s.shape == shape { stored = s }
    return LazyWeight(
      key: key, location: source?.location ?? "<no weights>", stored: stored,
      keep: residency == .keepWidened, pool: pool)
  }

  /// Throws `WeightMismatchError` listing every missing, unexpected and mis-shaped key.
  func finish(model: String) throws {
    guard let source else { return }
    try KeyCheck.verify(expected: expected, source: source, model: model)
  }
}

/// A key prefix inside a `WeightBinder` (`input_blocks.4.1` → `…transformer_blocks.0.attn1`).
struct WeightScope {
  let binder: WeightBinder
  let prefix: String

  init(_ binder: WeightBinder, _ prefix: String = "") {
    self.binder = binder
    self.prefix = prefix
  }

  subscript(_ name: String) -> WeightScope { WeightScope(binder, key(name)) }
  subscript(_ index: Int) -> WeightScope { self[String(index)] }

  func key(_ name: String) -> String { prefix.isEmpty ? name : prefix + "." + name }
  func weight(_ name: String, _ shape: [Int]) -> LazyWeight { binder.weight(key(name), shape) }
  var flops: FlopCounter { binder.flops }
}

/// `nn.Linear`: weight `[out, in]`, optional bias.
struct DenseLayer {
  let weight: LazyWeight
  let bias: LazyWeight?
  let inFeatures: Int, outFeatures: Int
  let flops: FlopCounter

  init(_ s: WeightScope, in inFeatures: Int, out outFeatures: Int, bias: Bool = true) {
    weight = s.weight("weight", [outFeatures, inFeatures])
    self.bias = bias ? s.weight("bias", [outFeatures]) : nil
    self.inFeatures = inFeatures
    self.outFeatures = outFeatures
    flops = s.flops
  }

  func callAsFunction(_ x: Tensor) throws -> Tensor {
    flops.add(2 * Double(x.count) * Double(outFeatures))
    let w = try weight.value()
    defer { weight.recycle(w) }
    return try Ops.linear(x, weight: w, bias: bias?.value())
  }
}

/// `nn.Conv2d` with bias, square kernel.
struct ConvLayer {
  let weight: LazyWeight
  let bias: LazyWeight
  let inChannels: Int, outChannels: Int, kernel: Int, stride: Int
  let padding: Padding2D
  let flops: FlopCounter

  init(
    _ s: WeightScope, in inChannels: Int, out outChannels: Int, kernel: Int, stride: Int = 1,
    padding: Padding2D
  ) {
    weight = s.weight("weight", [outChannels, inChannels, kernel, kernel])
    bias = s.weight("bias", [outChannels])
    self.inChannels = inChannels
    self.outChannels = outChannels
    self.kernel = kernel
    self.stride = stride
    self.padding = padding
    flops = s.flops
  }

  func callAsFunction(_ x: Tensor) throws -> Tensor {
    let w = try weight.value()
    defer { weight.recycle(w) }
    let y = try LayerKernels.conv2dInBands(x, weight: w, bias: bias.value(), stride: stride, padding: padding)
    flops.add(2 * Double(y.count) * Double(inChannels * kernel * kernel))
    return y
  }
}

/// `nn.GroupNorm` with affine weights.
struct GroupNormLayer {
  let weight: LazyWeight
  let bias: LazyWeight
  let groups: Int
  let eps: Float

  init(_ s: WeightScope, channels: Int, groups: Int, eps: Float) {
    weight = s.weight("weight", [channels])
    bias = s.weight("bias", [channels])
    self.groups = groups
    self.eps = eps
  }

  func callAsFunction(_ x: Tensor) throws -> Tensor {
    try Ops.groupNorm(x, groups: groups, weight: weight.value(), bias: bias.value(), eps: eps)
  }

  /// Through a replaceable group norm (the autoencoder's tiling hook).
  func callAsFunction(_ x: Tensor, using norm: GroupNormFunction) throws -> Tensor {
    try norm(x, groups, weight.value(), bias.value(), eps)
  }
}

/// `nn.LayerNorm` over the last axis with affine weights.
struct LayerNormLayer {
  let weight: LazyWeight
  let bias: LazyWeight
  let eps: Float

  init(_ s: WeightScope, channels: Int, eps: Float) {
    weight = s.weight("weight", [channels])
    bias = s.weight("bias", [channels])
    self.eps = eps
  }

  func callAsFunction(_ x: Tensor) throws -> Tensor {
    try Ops.layerNorm(x, weight: weight.value(), bias: bias.value(), eps: eps)
  }
}

/// Local kernels the networks need beyond `Ops` (fused for memory traffic, not new math).
enum LayerKernels {
  /// `x += other`, same shape, in place.
  static func addInPlace(_ x: inout Tensor, _ other: Tensor, op: String) throws {
    guard x.shape == other.shape else {
      throw TensorError.shapeMismatch(op: op, shapes: [x.shape, other.shape], detail: "residual shapes differ")
    }
    other.withUnsafeBufferPointer { po in
      x.withUnsafeMutableBufferPointer { px in
        let s = po.baseAddress!
        let d = px.baseAddress!
        Parallel.forRange(px.count, minChunk: 1 << 16) { r in
          for i in r { d[i] += s[i] }
        }
      }
    }
  }

  /// `x[b, c, :, :] += v[b, c]` for `x` `[B, C, H, W]` and `v` `[B, C]` (the ResBlock's embedding term).
  static func addChannelVector(_ x: inout Tensor, _ v: Tensor, op: String) throws {
    guard x.rank == 4, v.shape == [x.shape[0], x.shape[1]] else {
      throw TensorError.shapeMismatch(op: op, shapes: [x.shape, v.shape], detail: "expected [B, C, H, W] and [B, C]")
    }
    let plane = x.shape[2] * x.shape[3]
    v.withUnsafeBufferPointer { pv in
      x.withUnsafeMutableBufferPointer { px in
        let d = px.baseAddress!
        Parallel.forEach(pv.count) { bc in
          let add = pv[bc]
          let p = d + bc * plane
          for i in 0..<plane { p[i] += add }
        }
      }
    }
  }

  /// SiLU in place: x·σ(x) (vectorized `Ops.siluInPlace`).
  static func siluInPlace(_ x: inout Tensor) { Ops.siluInPlace(&x) }

  /// Floats of im2col scratch one convolution call may use (32 MB: at most glibc's largest dynamic mmap
  /// threshold, so the scratch is reused from the heap instead of faulted in afresh on every call).
  static let im2colBudget = 8 << 20

  /// `Ops.conv2d` computed in bands of output rows so that its im2col buffer (C·kh·kw × pixels) stays
  /// within `im2colBudget`: at 1024² the VAE's 256-channel 3×3 conv would otherwise need 9.4 GB of
  /// scratch. Each band convolves the input rows it needs with the padding of the image edge it touches.
  static func conv2dInBands(
    _ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Padding2D, budget: Int = im2colBudget
  ) throws -> Tensor {
    guard x.rank == 4, weight.rank == 4, stride >= 1 else {
      return try Ops.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }
    let (b, c, inH, inW) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (o, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
    let outH = (inH + padding.top + padding.bottom - kh) / stride + 1
    let outW = (inW + padding.left + padding.right - kw) / stride + 1
    let pointwise = kh == 1 && kw == 1 && stride == 1 && padding == .zero
    let rowsPerBand = max(1, budget / max(c * kh * kw * max(outW, 1), 1))
    if pointwise || outH <= 0 || outW <= 0 || rowsPerBand >= outH {
      return try Ops.conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }
    var out = Tensor(zeros: [b, o, outH, outW])
    for bi in 0..<b {
      var r0 = 0
      while r0 < outH {
        let r1 = min(outH, r0 + rowsPerBand)
        // Input rows feeding output rows r0..<r1, and the zero rows the image edge adds.
        let first = r0 * stride - padding.top
        let last = (r1 - 1) * stride - padding.top + kh - 1
        let lo = max(first, 0)
        let hi = min(last, inH - 1)
        var band = Tensor(zeros: [1, c, hi - lo + 1, inW])
        x.withUnsafeBufferPointer { px in
          band.withUnsafeMutableBufferPointer { pb in
            for ch in 0..<c {
              let src = px.baseAddress! + ((bi * c + ch) * inH + lo) * inW
              (pb.baseAddress! + ch * (hi - lo + 1) * inW).update(from: src, count: (hi - lo + 1) * inW)
            }
          }
        }
        let pad = Padding2D(
          top: lo - first, bottom: last - hi, left: padding.left, right: padding.right)
        let y = try Ops.conv2d(band, weight: weight, bias: bias, stride: stride, padding: pad)
        guard y.shape == [1, o, r1 - r0, outW] else {
          throw TensorError.shapeMismatch(
            op: "conv2d (banded)", shapes: [y.shape, [1, o, r1 - r0, outW]], detail: "band geometry")
        }
        y.withUnsafeBufferPointer { py in
          out.withUnsafeMutableBufferPointer { po in
            for oc in 0..<o {
              let dst = po.baseAddress! + ((bi * o + oc) * outH + r0) * outW
              dst.update(from: py.baseAddress! + oc * (r1 - r0) * outW, count: (r1 - r0) * outW)
            }
          }
        }
        r0 = r1
      }
    }
    return out
  }

  /// `[B, C, H, W]` → `[B, H·W, C]`.
  static func imageToTokens(_ x: Tensor) throws -> Tensor {
    let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    return try Ops.permute(try x.reshaped([b, c, h * w]), [0, 2, 1])
  }

  /// `[B, H·W, C]` → `[B, C, H, W]`.
  static func tokensToImage(_ x: Tensor, height: Int, width: Int) throws -> Tensor {
    let (b, c) = (x.shape[0], x.shape[2])
    return try Ops.permute(x, [0, 2, 1]).reshaped([b, c, height, width])
  }
}
