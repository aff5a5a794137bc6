import Foundation

/// A contiguous, row-major float32 tensor: the value every kernel computes on.
///
/// Layouts used across CogFlow: images and latents are `[B, C, H, W]`, token sequences `[B, T, C]`,
/// linear weights `[out, in]`, convolution weights `[out, in, kh, kw]` (PyTorch's orders, so that
/// checkpoint tensors are used as stored).
public struct Tensor: Sendable, Equatable {
  /// Extent of each dimension, outermost first.
  public private(set) var shape: [Int]
  /// The elements in row-major order; `data.count == shape.product`.
  public var data: [Float]

  /// Wraps `data` with `shape`; throws when the element counts differ.
  public init(shape: [Int], data: [Float]) throws {
    guard shape.allSatisfy({ $0 >= 0 }), shape.elementCount == data.count else {
      throw TensorError.shapeMismatch(
        op: "Tensor.init", shapes: [shape, [data.count]],
        detail: "shape holds \(shape.elementCount) elements but \(data.count) were given")
    }
    self.shape = shape
    self.data = data
  }

  /// A tensor of zeros.
  public init(zeros shape: [Int]) {
    self.shape = shape
    self.data = [Float](repeating: 0, count: shape.elementCount)
  }

  /// A tensor filled with one value.
  public init(repeating value: Float, shape: [Int]) {
    self.shape = shape
    self.data = [Float](repeating: value, count: shape.elementCount)
  }

  /// A tensor whose elements are written by `body` into uninitialized memory; `body` must write all of them.
  public init(
    uninitializedShape shape: [Int], _ body: (UnsafeMutableBufferPointer<Float>) throws -> Void
  ) rethrows {
    let n = shape.elementCount
    self.shape = shape
    self.data = try [Float](unsafeUninitializedCapacity: n) { buffer, initialized in
      try body(buffer)
      initialized = n
    }
  }

  /// Number of dimensions.
  public var rank: Int { shape.count }
  /// Number of elements.
  public var count: Int { data.count }

  /// The same elements under another shape with the same element count; one dimension may be -1.
  public func reshaped(_ newShape: [Int]) throws -> Tensor {
    var resolved = newShape
    if let inferred = newShape.firstIndex(of: -1) {
      let known = newShape.enumerated().filter { $0.offset != inferred }.map(\.element).elementCount
      guard known > 0, count % known == 0 else {
        throw TensorError.shapeMismatch(
          op: "reshape", shapes: [shape, newShape], detail: "cannot infer the -1 dimension")
      }
      resolved[inferred] = count / known
    }
    guard resolved.elementCount == count, resolved.allSatisfy({ $0 >= 0 }) else {
      throw TensorError.shapeMismatch(
        op: "reshape", shapes: [shape, newShape], detail: "element counts differ")
    }
    var out = self
    out.shape = resolved
    return out
  }

  /// Read access to the elements without copying.
  @inlinable
  public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows
    -> R
  {
    try data.withUnsafeBufferPointer(body)
  }

  /// Write access to the elements without copying (copy-on-write first if shared).
  @inlinable
  public mutating func withUnsafeMutableBufferPointer<R>(
    _ body: (inout UnsafeMutableBufferPointer<Float>) throws -> R
  ) rethrows -> R {
    try data.withUnsafeMutableBufferPointer(body)
  }
}

extension Tensor: CustomStringConvertible {
  public var description: String {
    let head = data.prefix(6).map { String(format: "%.5g", Double($0)) }.joined(separator: ", ")
    return "Tensor\(shape)[\(head)\(data.count > 6 ? ", …" : "")]"
  }
}

extension Array where Element == Int {
  /// The product of the extents: the element count of a shape (1 for `[]`).
  public var elementCount: Int { reduce(1, *) }
}
