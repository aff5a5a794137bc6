import Foundation
import XCTest

@testable import Diffusion
@testable import Tensor

/// Tests/Fixtures/diffusion/golden.json (made by Tests/tools/make_diffusion_golden.py; see its README).
struct Golden: Decodable {
  struct Grid: Decodable {
    let timesteps: [Int]
    let sigmas: [Float]
  }
  struct Case: Decodable {
    let name: String
    let sampler: String
    let params: [String: Int]
    let guider: String
    let cfg_cond_embed_dim: Int?
    let image_size: Int
    let shape: [Int]
    let noise: [Float]
    let low: [Float]
    let context: [Float]
    let context_shape: [Int]
    let states: [[Float]]
    let output: [Float]
  }
  let sigma_table: [Float]
  let grids: [String: Grid]
  let size_vector: [String: [Float]]
  let guidance_embedding: [String: [Float]]
  let cases: [Case]

  static let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/diffusion/golden.json")

  static func load() throws -> Golden {
    try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
  }
}

/// A reproducible pseudo-random tensor (uniform in [-1, 1) scaled), not torch-compatible: for tests that
/// need arbitrary but fixed data.
func pseudoRandom(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
  var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
  var t = Tensor(zeros: shape)
  for i in 0..<t.count {
    state ^= state << 13
    state ^= state >> 7
    state ^= state << 17
    t.data[i] = (Float(state % 1_000_000) / 500_000 - 1) * scale
  }
  return t
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
  precondition(a.count == b.count, "length \(a.count) vs \(b.count)")
  return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

func maxAbs(_ a: [Float]) -> Float { a.map(abs).max() ?? 0 }
