/// Zero padding of a 2-D convolution, per side.
public struct Padding2D: Sendable, Hashable {
  public var top: Int, bottom: Int, left: Int, right: Int

  public init(top: Int, bottom: Int, left: Int, right: Int) {
    self.top = top
    self.bottom = bottom
    self.left = left
    self.right = right
  }

  /// The same padding on every side.
  public static func uniform(_ p: Int) -> Padding2D { .init(top: p, bottom: p, left: p, right: p) }
  /// No padding.
  public static let zero = Padding2D.uniform(0)
  /// The VAE downsample: `F.pad(x, (0, 1, 0, 1))` then a pad-0 stride-2 conv (official §11.5).
  public static let vaeDownsample = Padding2D(top: 0, bottom: 1, left: 0, right: 1)
}

/// Output extent of a convolution along one axis.
@inline(__always)
func convOut(_ size: Int, kernel: Int, stride: Int, padLo: Int, padHi: Int) -> Int {
  (size + padLo + padHi - kernel) / stride + 1
}
