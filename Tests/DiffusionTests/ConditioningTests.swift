import XCTest

@testable import Diffusion
@testable import Tensor

final class ConditioningTests: XCTestCase {
  func testSizeVectorMatchesOfficial() throws {
    let golden = try Golden.load()
    for size in [512, 1024] {
      let y = SizeConditioning.vector(imageSize: size)
      XCTAssertEqual(y.shape, [1, 1536])
      let ref = try XCTUnwrap(golden.size_vector[String(size)])
      // float32 arguments up to 1024 rad: Swift's and PyTorch's float32 cos/sin differ by up to ~3e-5 there
      // (official §2.2 quotes −0.9174455 vs PyTorch's −0.9174577 for one of these entries).
      XCTAssertLessThanOrEqual(maxAbsDiff(y.data, ref), 5e-5, "size \(size)")
    }
    // The order of the six parts: crop (0, 0) embeds as [1…1, 0…0] in slots 2 and 3.
    let y = SizeConditioning.vector(originalSize: (512, 768), cropTopLeft: (0, 0), targetSize: (1024, 256))
    XCTAssertEqual(Array(y.data[512..<640]), Array(repeating: 1, count: 128))
    XCTAssertEqual(Array(y.data[640..<768]), Array(repeating: 0, count: 128))
    XCTAssertEqual(Array(y.data[256..<512]), Embeddings.timestep([768], dim: 256).data)
    XCTAssertEqual(Array(y.data[1024..<1280]), Embeddings.timestep([1024], dim: 256).data)
  }

  func testGuidanceEmbeddingMatchesOfficial() throws {
    let golden = try Golden.load()
    for dim in [512, 256] {
      guard case .none(let e?) = Guidance.distilled(embeddingDim: dim, batch: 2) else {
        return XCTFail("distilled guidance must carry an embedding")
      }
      XCTAssertEqual(e.shape, [2, dim])
      let ref = try XCTUnwrap(golden.guidance_embedding[String(dim)])
      // Arguments reach 7500 rad: float32 sin/cos implementations differ up to ~1e-3 (official §2.2).
      XCTAssertLessThanOrEqual(maxAbsDiff(Array(e.data[0..<dim]), ref), 1e-3)
      XCTAssertEqual(Array(e.data[0..<dim]), Array(e.data[dim..<(2 * dim)]))
    }
  }

  func testBatchedAndZeroContext() throws {
    let c = Conditioning(context: pseudoRandom([1, 3, 4], seed: 1), vector: pseudoRandom([1, 6], seed: 2))
    let u = c.zeroContext
    XCTAssertEqual(u.context, Tensor(zeros: [1, 3, 4]))
    XCTAssertEqual(u.vector, c.vector)
    let both = try Conditioning.batched([u, c])
    XCTAssertEqual(both.context?.shape, [2, 3, 4])
    XCTAssertEqual(Array(both.context!.data[12..<24]), c.context!.data)
    XCTAssertThrowsError(try Conditioning.batched([Conditioning(vector: c.vector), c]))
  }
}
