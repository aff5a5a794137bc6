import Foundation
import Tensor
import XCTest

@testable import ModelIO

final class SafetensorsTests: XCTestCase {
  func testReadsWhatTheReferenceWriterWrote() throws {
    let f = try SafetensorsFile(path: Fixture.path("plain.safetensors"))
    try assertMatchesExpected(f, Fixture.tensors("plain"))
    XCTAssertEqual(f.metadata, ["format": "pt", "note": "x"])
  }

  func testWriterRoundTripsEveryDtypeAndMetadata() throws {
    let dir = try Fixture.scratch(self)
    let src = try SafetensorsFile(path: Fixture.path("plain.safetensors"))
    var tensors: [String: StoredTensor] = [:]
    for k in src.keys { tensors[k] = try src.stored(k) }
    let out = dir + "/copy.safetensors"
    try SafetensorsWriter.write(tensors, metadata: ["k\"ey": "v\\al\n"], to: out)
    let back = try SafetensorsFile(path: out)
    try assertMatchesExpected(back, Fixture.tensors("plain"))
    XCTAssertEqual(back.metadata, ["k\"ey": "v\\al\n"])
    // The header length keeps the data section 8-byte aligned, as the reference writer does.
    let header = try XCTUnwrap(FileManager.default.contents(atPath: out))
    let len = header.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    XCTAssertEqual((8 + len) % 8, 0)
    // No temporary file is left behind.
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["copy.safetensors"])
  }

  func testWriterRefusesMetadataName() throws {
    let dir = try Fixture.scratch(self)
    let t = try StoredTensor(Tensor(zeros: [1]))
    assertModelIOError(["__metadata__"]) {
      try SafetensorsWriter.write(["__metadata__": t], to: dir + "/x.safetensors")
    }
  }

  func testMalformedFilesNameFileTensorAndProblem() {
    let cases: [(String, [String])] = [
      ("huge_header", ["header length 1152921504606846976 exceeds the file"]),
      ("offsets_outside", ["tensor 'w'", "outside the data section"]),
      ("huge_shape", ["tensor 'w'", "overflows"]),
      ("overlap", ["overlaps tensor 'a'"]),
      ("length_mismatch", ["tensor 'a'", "needs 6"]),
      ("bad_json", ["not valid JSON"]),
      ("unknown_dtype", ["tensor 'a'", "unsupported", "F8_E4M3"]),
    ]
    for (name, fragments) in cases {
      let path = Fixture.path("bad/\(name).safetensors")
      assertModelIOError([path] + fragments) { _ = try SafetensorsFile(path: path) }
    }
  }

  func testHeaderEdgeCases() throws {
    func header(_ json: String, data: Int = 0) -> [UInt8] {
      var b: [UInt8] = []
      let h = Array(json.utf8)
      for i in 0..<8 { b.append(UInt8((h.count >> (8 * i)) & 0xff)) }
      return b + h + [UInt8](repeating: 0, count: data)
    }
    let cases: [(String, Int, String)] = [
      (#"{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, 4, "shape"),
      (#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, 4, "shape"),
      (#"{"a":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}"#, 4, "shape"),
      (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, 4, "not ordered"),
      (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, 4, "pair"),
      (#"{"a":{"shape":[1],"data_offsets":[0,4]}}"#, 4, "missing dtype"),
      (#"{"a":[1]}"#, 0, "not an object"),
      (#"{"__metadata__":{"x":1}}"#, 0, "not a string"),
      (#"[1]"#, 0, "JSON object"),
    ]
    for (json, data, fragment) in cases {
      let bytes = header(json, data: data)
      assertModelIOError([fragment]) {
        _ = try bytes.withUnsafeBytes { try SafetensorsFile.parseHeader($0, path: "mem") }
      }
    }
    // Zero-length tensors may share an offset with anything.
    let ok = header(
      #"{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#,
      data: 2)
    let parsed = try ok.withUnsafeBytes { try SafetensorsFile.parseHeader($0, path: "mem") }
    XCTAssertEqual(parsed.entries.count, 2)
    assertModelIOError(["shorter than the 8-byte"]) {
      _ = try [UInt8](repeating: 0, count: 5).withUnsafeBytes { try SafetensorsFile.parseHeader($0, path: "mem") }
    }
  }

  func testMissingFileAndMissingTensor() throws {
    assertModelIOError(["/no/such.safetensors", "cannot read"]) {
      _ = try SafetensorsFile(path: "/no/such.safetensors")
    }
    let f = try SafetensorsFile(path: Fixture.path("plain.safetensors"))
    assertModelIOError(["no tensor named 'zz'"]) { _ = try f.stored("zz") }
  }

  func testTensorsStayValidAfterTheFileObjectIsGone() throws {
    var t: StoredTensor?
    do {
      let f = try SafetensorsFile(path: Fixture.path("plain.safetensors"))
      t = try f.stored("a.f32")
    }
    XCTAssertEqual(try t?.doubles().map { Float($0) }, Fixture.tensors("plain")["a.f32"]?.values.map { Float($0) })
  }
}
