import Foundation

/// Element types of stored tensors (checkpoints, caches). Compute is always float32; half types are
/// storage formats widened per use (this CPU has no bf16/fp16 arithmetic, see reference/performance.md §2.4).
public enum DType: String, Sendable, Hashable, Codable, CaseIterable {
  case f64 = "F64"
  case f32 = "F32"
  case f16 = "F16"
  case bf16 = "BF16"
  case i64 = "I64"
  case i32 = "I32"
  case i16 = "I16"
  case i8 = "I8"
  case u8 = "U8"
  case bool = "BOOL"

  /// Bytes per element.
  public var byteSize: Int {
    switch self {
    case .f64, .i64: return 8
    case .f32, .i32: return 4
    case .f16, .bf16, .i16: return 2
    case .i8, .u8, .bool: return 1
    }
  }

  /// Whether `toFloat32` can widen this type.
  public var isFloatingPoint: Bool { self == .f64 || self == .f32 || self == .f16 || self == .bf16 }
}

/// Owner of a run of raw bytes: heap memory, or a region of a memory-mapped file kept alive by `owner`.
public final class ByteStorage: @unchecked Sendable {
  public let base: UnsafeRawPointer
  public let byteCount: Int
  private let release: (() -> Void)?

  /// Copies `bytes` into new heap memory.
  public init(copying bytes: UnsafeRawBufferPointer) {
    let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
    if let src = bytes.baseAddress, bytes.count > 0 { p.copyMemory(from: src, byteCount: bytes.count) }
    base = UnsafeRawPointer(p)
    byteCount = bytes.count
    release = { p.deallocate() }
  }

  /// Wraps memory owned elsewhere; `release` runs when the storage is freed (for example munmap).
  public init(borrowing base: UnsafeRawPointer, byteCount: Int, release: (() -> Void)?) {
    self.base = base
    self.byteCount = byteCount
    self.release = release
  }

  deinit { release?() }
}

/// A tensor as stored: dtype, shape and bytes (little-endian), not yet widened to float32.
/// Large weights stay like this, memory-mapped, until a layer needs them.
public struct StoredTensor: Sendable {
  public let dtype: DType
  public let shape: [Int]
  public let storage: ByteStorage
  /// Byte offset of the first element inside `storage`.
  public let offset: Int

  public init(dtype: DType, shape: [Int], storage: ByteStorage, offset: Int = 0) throws {
    let need = shape.elementCount * dtype.byteSize
    guard offset >= 0, need <= storage.byteCount - offset else {
      throw TensorError.invalidArgument(
        op: "StoredTensor",
        detail: "\(dtype.rawValue)\(shape) needs \(need) bytes at offset \(offset) "
          + "but the storage holds \(storage.byteCount)")
    }
    self.dtype = dtype
    self.shape = shape
    self.storage = storage
    self.offset = offset
  }

  /// Stores a float32 tensor in `dtype` (f32, f16 or bf16; bf16 and f16 round to nearest even).
  public init(_ tensor: Tensor, as dtype: DType = .f32) throws {
    let n = tensor.count
    let bytes = UnsafeMutableRawBufferPointer.allocate(
      byteCount: max(n * dtype.byteSize, 1), alignment: 64)
    defer { bytes.deallocate() }
    try tensor.withUnsafeBufferPointer { src in
      switch dtype {
      case .f32: bytes.baseAddress!.copyMemory(from: src.baseAddress!, byteCount: n * 4)
      case .f16: HalfConversion.narrowToF16(src, into: bytes.baseAddress!.assumingMemoryBound(to: UInt16.self))
      case .bf16: HalfConversion.narrowToBF16(src, into: bytes.baseAddress!.assumingMemoryBound(to: UInt16.self))
      default:
        throw TensorError.dtypeMismatch(op: "StoredTensor.init", expected: "F32, F16 or BF16", found: dtype.rawValue)
      }
    }
    try self.init(
      dtype: dtype, shape: tensor.shape,
      storage: ByteStorage(copying: UnsafeRawBufferPointer(start: bytes.baseAddress, count: n * dtype.byteSize)))
  }

  public var elementCount: Int { shape.elementCount }
  public var byteCount: Int { elementCount * dtype.byteSize }
  /// The stored bytes (read-only).
  public var bytes: UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: storage.base + offset, count: byteCount)
  }

  /// Widens to a float32 tensor (F16C-free table conversion for f16, a shift for bf16).
  public func toFloat32() throws -> Tensor {
    let n = elementCount
    let src = storage.base + offset
    return try Tensor(uninitializedShape: shape) { out in
      guard let dst = out.baseAddress else { return }
      switch dtype {
      case .f32: dst.update(from: src.assumingMemoryBound(to: Float.self), count: n)
      case .f16: HalfConversion.widenF16(src, count: n, into: dst)
      case .bf16: HalfConversion.widenBF16(src, count: n, into: dst)
      case .f64:
        let s = src.assumingMemoryBound(to: Double.self)
        for i in 0..<n { dst[i] = Float(s[i]) }
      default:
        throw TensorError.dtypeMismatch(
          op: "StoredTensor.toFloat32", expected: "F32, F16, BF16 or F64", found: dtype.rawValue)
      }
    }
  }
}

/// float16 / bfloat16 ↔ float32 conversion, exact on widening and round-to-nearest-even on narrowing.
public enum HalfConversion {
  /// All 65,536 float16 bit patterns widened to float32: the widening is one table load per element.
  static let f16Table: [Float] = (0..<65536).map { f16BitsToFloat(UInt16($0)) }

  @inline(__always)
  static func f16BitsToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = Int((h >> 10) & 0x1f)
    let mant = UInt32(h & 0x3ff)
    if exp == 0 {
      // Zero or subnormal: mant · 2^-24.
      let v = Float(mant) * Float(bitPattern: 0x3380_0000)
      return sign != 0 ? -v : v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7f80_0000 | (mant << 13)) }
    return Float(bitPattern: sign | (UInt32(exp - 15 + 127) << 23) | (mant << 13))
  }

  public static func widenF16(_ src: UnsafeRawPointer, count n: Int, into dst: UnsafeMutablePointer<Float>) {
    let s = src.assumingMemoryBound(to: UInt16.self)
    f16Table.withUnsafeBufferPointer { t in
      let table = t.baseAddress!
      Parallel.forRange(n, minChunk: 1 << 16) { r in
        for i in r { dst[i] = table[Int(s[i])] }
      }
    }
  }

  public static func widenBF16(_ src: UnsafeRawPointer, count n: Int, into dst: UnsafeMutablePointer<Float>) {
    let s = src.assumingMemoryBound(to: UInt16.self)
    let d = UnsafeMutableRawPointer(dst).assumingMemoryBound(to: UInt32.self)
    Parallel.forRange(n, minChunk: 1 << 16) { r in
      for i in r { d[i] = UInt32(s[i]) << 16 }
    }
  }

  public static func narrowToBF16(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutablePointer<UInt16>) {
    for i in 0..<src.count {
      let bits = src[i].bitPattern
      if src[i].isNaN {
        dst[i] = UInt16(bits >> 16) | 0x40
        continue
      }
      let rounding = 0x7fff + ((bits >> 16) & 1)
      dst[i] = UInt16((bits &+ rounding) >> 16)
    }
  }

  public static func narrowToF16(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutablePointer<UInt16>) {
    for i in 0..<src.count { dst[i] = Float16(src[i]).bitPattern }
  }
}
