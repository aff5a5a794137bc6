import Foundation
import Tensor
import XCTest

@testable import ModelIO

final class PNGTests: XCTestCase {
  func testEveryColorTypeAndDepthDecodesToTheWrittenSamples() throws {
    let cases = try XCTUnwrap(Fixture.expected["png"] as? [String: [String: Any]])
    XCTAssertEqual(cases.count, 12)
    for (name, c) in cases {
      let img = try PNGImage.read(path: Fixture.path("png/\(name).png"))
      XCTAssertEqual(img.width, c["width"] as? Int, name)
      XCTAssertEqual(img.height, c["height"] as? Int, name)
      XCTAssertEqual(img.channels, c["channels"] as? Int, name)
      XCTAssertEqual(img.bitDepth, c["bit_depth"] as? Int, name)
      XCTAssertEqual(img.samples.map(Int.init), c["samples"] as? [Int], name)
    }
  }

  func testTextChunksAreRead() throws {
    let img = try PNGImage.read(path: Fixture.path("png/text.png"))
    XCTAssertEqual(img.text("Title"), "café latin-1")
    XCTAssertEqual(img.text("prompt"), "一只猫 — a cat")
    XCTAssertEqual(img.text("comment"), "compressed text")
    XCTAssertEqual(img.text.first { $0.keyword == "prompt" }?.international, true)
    XCTAssertEqual(img.text.first { $0.keyword == "Title" }?.international, false)
  }

  func testBrokenFilesGiveClearErrors() throws {
    let cut = Fixture.path("bad/cut.png")
    assertModelIOError([cut, "PNG", "truncated"]) { _ = try PNGImage.read(path: cut) }
    let huge = Fixture.path("bad/huge_dimensions.png")
    assertModelIOError([huge, "60000x60000"]) { _ = try PNGImage.read(path: huge) }
    // Found by the fuzzer: a text chunk whose length field claims 1.7 GB made libpng allocate that much
    // before reading; chunk lengths are now checked against the file first.
    let lying = Fixture.path("bad/fuzz_lying_chunk_length.png")
    assertModelIOError([lying, "chunk 'zTXt' at byte 105 claims 1767994144 bytes"]) {
      _ = try PNGImage.read(path: lying)
    }
    assertModelIOError(["bad signature"]) { _ = try PNGImage.decode(Data("not a png".utf8)) }
    assertModelIOError(["limit"]) {
      _ = try PNGImage.read(path: Fixture.path("png/rgba16.png"), maxBytes: 100)
    }
    // A corrupted pixel stream (CRC damage in IDAT) is an error, not garbage.
    var data = try XCTUnwrap(FileManager.default.contents(atPath: Fixture.path("png/rgb8.png")))
    let idat = try XCTUnwrap(data.range(of: Data("IDAT".utf8)))
    data[idat.upperBound + 3] ^= 0xFF
    XCTAssertThrowsError(try PNGImage.decode(data))
  }

  func testWriteReadRoundTripWithText() throws {
    let dir = try Fixture.scratch(self)
    for channels in [3, 4] {
      let samples = (0..<(7 * 5 * channels)).map { UInt16(($0 * 37) % 256) }
      let text = [
        PNGText("cogflow", "{\"workflow\": \"ünïcode ✓\"}"), PNGText("Software", "CogFlow", international: false),
      ]
      let img = try PNGImage(width: 7, height: 5, channels: channels, samples: samples, text: text)
      let path = dir + "/out\(channels).png"
      try img.write(to: path)
      let back = try PNGImage.read(path: path)
      XCTAssertEqual(back.samples, samples)
      XCTAssertEqual(back.channels, channels)
      XCTAssertEqual(back.text("cogflow"), text[0].text)
      XCTAssertEqual(back.text("Software"), "CogFlow")
    }
    XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir).contains { $0.hasPrefix(".") })
  }

  func testWriteRefusals() throws {
    let gray = try PNGImage(width: 1, height: 1, channels: 1, samples: [0])
    assertModelIOError(["RGB and RGBA"]) { _ = try gray.encode() }
    let rgb = try PNGImage(width: 1, height: 1, channels: 3, samples: [0, 0, 0], text: [PNGText(" bad", "x")])
    assertModelIOError(["keyword"]) { _ = try rgb.encode() }
    let latin = try PNGImage(
      width: 1, height: 1, channels: 3, samples: [0, 0, 0], text: [PNGText("k", "✓", international: false)])
    assertModelIOError(["Latin-1"]) { _ = try latin.encode() }
  }

  func testTensorConversionTruncatesByDefaultAndCanRound() throws {
    // [1, 3, 1, 4]: per channel values chosen at the quantization boundaries.
    let v: [Float] = [0, 0.5, 1, 1.5, -0.1, 0.999, 0.002, .nan, 0.25, 0.75, 0.1, 0.6]
    let t = try Tensor(shape: [1, 3, 1, 4], data: v)
    let trunc = try PNGImage(tensor: t)
    // Samples interleaved per pixel: pixel 0 = (v[0], v[4], v[8]).
    XCTAssertEqual(trunc.samples, [0, 0, 63, 127, 254, 191, 255, 0, 25, 255, 0, 153])
    let round = try PNGImage(tensor: t, quantization: .round)
    XCTAssertEqual(round.samples, [0, 0, 64, 128, 255, 191, 255, 1, 26, 255, 0, 153])
    // [-1, 1]: x → (x + 1) / 2 first.
    let signed = try PNGImage(tensor: try Tensor(shape: [1, 1, 1, 3], data: [-1, 0, 1]), range: .minusOneOne)
    XCTAssertEqual(signed.samples, [0, 127, 255])
    assertModelIOError(["[1, C (1-4), H, W]"]) { _ = try PNGImage(tensor: Tensor(zeros: [2, 3, 1, 1])) }
  }

  func testImageToTensor() throws {
    let img = try PNGImage(width: 2, height: 1, channels: 3, samples: [0, 51, 255, 255, 102, 0])
    let t = img.tensor()
    XCTAssertEqual(t.shape, [1, 3, 1, 2])
    XCTAssertEqual(t.data, [0, 255, 51, 102, 255, 0].map { Float($0) / 255 })
    let s = img.tensor(range: .minusOneOne)
    XCTAssertEqual(s.data[0], -1)
    XCTAssertEqual(s.data[1], 1)
    let deep = try PNGImage.read(path: Fixture.path("png/rgb16.png"))
    XCTAssertEqual(deep.tensor().data[0], Float(deep.samples[0]) / 65535)
  }
}
