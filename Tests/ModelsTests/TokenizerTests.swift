import Foundation
import XCTest

@testable import Models

/// The tokenizer against ids recorded from Python `sentencepiece` and transformers' `T5Tokenizer`
/// (Tests/Fixtures/tokenizer, made by Tests/tools/make_tokenizer_fixtures.py).
final class TokenizerTests: XCTestCase {
  static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/tokenizer")

  struct Case {
    let text: String
    let normalized: String
    let spIds: [Int]
    let spPieces: [String]
    let hfIds: [Int]?
    let hfRawIds: [Int]?
  }

  func loadCases(_ name: String) throws -> (model: String, t5like: Bool, cases: [Case]) {
    let url = Self.fixtures.appendingPathComponent(name + ".json")
    let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    let raw = try XCTUnwrap(json["cases"] as? [[String: Any]])
    let cases = try raw.map { c in
      Case(
        text: try XCTUnwrap(c["text"] as? String), normalized: try XCTUnwrap(c["normalized"] as? String),
        spIds: try XCTUnwrap(c["sp_ids"] as? [Int]), spPieces: try XCTUnwrap(c["sp_pieces"] as? [String]),
        hfIds: c["hf_ids"] as? [Int], hfRawIds: c["hf_raw_ids"] as? [Int])
    }
    XCTAssertGreaterThan(cases.count, 50)
    return (Self.fixtures.appendingPathComponent(name + ".model").path, json["t5like"] as? Bool ?? false, cases)
  }

  func checkModel(_ name: String) throws {
    let (path, t5like, cases) = try loadCases(name)
    let sp = try SentencePieceTokenizer(contentsOf: path)
    var failures = 0
    for c in cases {
      let label = "\(name): \(c.text.debugDescription.prefix(60))"
      XCTAssertEqual(try sp.normalize(c.text), c.normalized, label)
      let pieces = try sp.encodePieces(c.text)
      XCTAssertEqual(pieces.map(\.id), c.spIds, label)
      XCTAssertEqual(pieces.map(\.piece), c.spPieces, label)
      if pieces.map(\.id) != c.spIds { failures += 1 }
    }
    XCTAssertEqual(failures, 0, "\(name): \(failures) of \(cases.count) texts differ from sentencepiece")
    guard t5like else { return }
    let t5 = try T5Tokenizer(contentsOf: path)
    for c in cases {
      let label = "\(name) (T5Tokenizer): \(c.text.debugDescription.prefix(60))"
      XCTAssertEqual(try t5.encode(c.text), try XCTUnwrap(c.hfRawIds), label)
      let ids = try t5.inputIds(c.text)
      XCTAssertEqual(ids, try XCTUnwrap(c.hfIds), label)
      XCTAssertEqual(ids.count, 225)
    }
  }

  func testT5Like300() throws { try checkModel("t5like_300") }
  func testT5Like1000() throws { try checkModel("t5like_1000") }
  func testT5Like4000() throws { try checkModel("t5like_4000") }
  func testUserDefinedSymbolsAndByteFallback() throws { try checkModel("userdef_bytefallback_500") }
  func testIdentityNormalizerWithoutDummyPrefix() throws { try checkModel("identity_nodummy_400") }

  func testFixturesCoverTheHardCases() throws {
    // Guards against a regenerated corpus silently losing the cases that matter.
    let (_, _, cases) = try loadCases("t5like_1000")
    XCTAssertTrue(cases.contains { $0.spIds.count > 224 }, "a prompt longer than CogView3's 224 tokens")
    XCTAssertTrue(cases.contains { $0.spPieces.contains { $0.unicodeScalars.count > 1 && $0.contains("𝄞") } })
    XCTAssertTrue(cases.contains { $0.hfRawIds != $0.spIds }, "special-token text that T5Tokenizer splits")
    let bytes = try loadCases("userdef_bytefallback_500").cases
    XCTAssertTrue(bytes.contains { $0.spPieces.contains("<0xF0>") }, "byte fallback exercised")
  }

  func testModelFieldsAreRead() throws {
    let model = try SentencePieceModel(contentsOf: Self.fixtures.appendingPathComponent("t5like_1000.model").path)
    XCTAssertEqual(model.pieces.count, 1000)
    XCTAssertEqual(model.trainerSpec.unkId, 2)
    XCTAssertEqual(model.trainerSpec.eosId, 1)
    XCTAssertEqual(model.trainerSpec.padId, 0)
    XCTAssertEqual(model.trainerSpec.bosId, -1)
    XCTAssertEqual(model.normalizerSpec.name, "nmt_nfkc")
    XCTAssertFalse(model.normalizerSpec.precompiledCharsmap.isEmpty)
    XCTAssertEqual(model.pieces[0].type, .control)
    XCTAssertEqual(model.pieces[0].text, "<pad>")
    XCTAssertEqual(model.pieces[2].type, .unknown)
    let ud = try SentencePieceModel(
      contentsOf: Self.fixtures.appendingPathComponent("userdef_bytefallback_500.model").path)
    XCTAssertTrue(ud.trainerSpec.byteFallback)
    XCTAssertEqual(ud.trainerSpec.userDefinedSymbols, ["<cat>", "photo of", "1", "🐱"])
    XCTAssertEqual(ud.pieces.filter { $0.type == .byte }.count, 256)
    XCTAssertEqual(ud.pieces.filter { $0.type == .userDefined }.map(\.text), ["<cat>", "photo of", "1", "🐱"])
  }

  func testT5SpecialIds() throws {
    let t5 = try T5Tokenizer(contentsOf: Self.fixtures.appendingPathComponent("t5like_300.model").path)
    XCTAssertEqual(t5.eosId, 1)
    XCTAssertEqual(t5.padId, 0)
    XCTAssertEqual(try t5.encode("<extra_id_0>"), [399])
    XCTAssertEqual(try t5.encode("<extra_id_99>"), [300])
    XCTAssertEqual(try t5.inputIds("", maxLength: 4), [1, 0, 0, 0])
    XCTAssertEqual(try t5.inputIds("</s>", maxLength: 1), [1])
    XCTAssertThrowsError(try t5.inputIds("x", maxLength: 0))
  }

  // MARK: bad files

  /// Protobuf writer for hand-made models.
  struct Proto {
    var bytes: [UInt8] = []
    mutating func varint(_ v: UInt64) {
      var v = v
      while v >= 0x80 {
        bytes.append(UInt8(v & 0x7f) | 0x80)
        v >>= 7
      }
      bytes.append(UInt8(v))
    }
    mutating func key(_ field: Int, _ wire: Int) { varint(UInt64(field << 3 | wire)) }
    mutating func int(_ field: Int, _ v: Int) {
      key(field, 0)
      varint(UInt64(bitPattern: Int64(v)))
    }
    mutating func bytes(_ field: Int, _ b: [UInt8]) {
      key(field, 2)
      varint(UInt64(b.count))
      bytes += b
    }
    mutating func float(_ field: Int, _ f: Float) {
      key(field, 5)
      let bits = f.bitPattern
      for i in 0..<4 { bytes.append(UInt8((bits >> (8 * UInt32(i))) & 0xff)) }
    }
    static func piece(_ text: String, _ score: Float, _ type: Int) -> [UInt8] {
      var p = Proto()
      p.bytes(1, Array(text.utf8))
      p.float(2, score)
      p.int(3, type)
      return p.bytes
    }
  }

  func tinyModel(pieces: [(String, Float, Int)], trainer: [UInt8] = [], normalizer: [UInt8]? = nil) -> [UInt8] {
    var m = Proto()
    for (t, s, ty) in pieces { m.bytes(1, Proto.piece(t, s, ty)) }
    m.bytes(2, trainer)
    if let normalizer { m.bytes(3, normalizer) }
    return m.bytes
  }

  func testHandMadeModelEncodes() throws {
    // "▁ab" beats "▁a"+"b" by score; "c" is unknown, two unknowns in a row merge into one <unk>.
    let bytes = tinyModel(pieces: [
      ("<unk>", 0, 2), ("▁", -1, 1), ("▁a", -2, 1), ("b", -2, 1), ("▁ab", -3, 1), ("a", -4, 1),
    ])
    let sp = try SentencePieceTokenizer(model: SentencePieceModel(bytes: bytes, location: "tiny"))
    XCTAssertEqual(try sp.encode("ab"), [4])
    XCTAssertEqual(try sp.encode("  ab   ab "), [4, 4])
    XCTAssertEqual(try sp.encodePieces("abcc a").map(\.piece), ["▁ab", "cc", "▁a"])
    XCTAssertEqual(try sp.encode("abcc a"), [4, 0, 2])
  }

  func testErrors() throws {
    func fails(_ bytes: [UInt8], _ expect: (SentencePieceError) -> Bool, line: UInt = #line) {
      XCTAssertThrowsError(
        try SentencePieceTokenizer(model: SentencePieceModel(bytes: bytes, location: "bad.model")), line: line
      ) { error in
        guard let e = error as? SentencePieceError else { return XCTFail("\(error)", line: line) }
        XCTAssertTrue(expect(e), "\(e)", line: line)
        XCTAssertTrue(e.description.contains("bad.model"), line: line)
      }
    }
    let good = tinyModel(pieces: [("<unk>", 0, 2), ("a", -1, 1)])
    XCTAssertNoThrow(try SentencePieceTokenizer(model: SentencePieceModel(bytes: good)))
    fails(Array(good.dropLast(3))) { if case .malformed = $0 { return true } else { return false } }
    fails([0x0b, 0x00]) { if case .malformed = $0 { return true } else { return false } }  // wire type 3
    fails(tinyModel(pieces: [("a", -1, 1)])) { if case .invalidModel = $0 { return true } else { return false } }
    fails(tinyModel(pieces: [("<unk>", 0, 2), ("a", -1, 1), ("a", -2, 1)])) {
      if case .invalidModel = $0 { return true } else { return false }
    }
    fails(tinyModel(pieces: [("<unk>", 0, 2), ("a", -1, 9)])) {
      if case .invalidModel = $0 { return true } else { return false }
    }
    var bpe = Proto()
    bpe.int(3, 2)
    fails(tinyModel(pieces: [("<unk>", 0, 2), ("a", -1, 1)], trainer: bpe.bytes)) {
      if case .unsupported = $0 { return true } else { return false }
    }
    var badMap = Proto()
    badMap.bytes(2, [0xff, 0xff, 0, 0, 1, 2, 3])
    fails(tinyModel(pieces: [("<unk>", 0, 2), ("a", -1, 1)], normalizer: badMap.bytes)) {
      if case .invalidModel = $0 { return true } else { return false }
    }
    var noByte = Proto()
    noByte.int(35, 1)
    fails(tinyModel(pieces: [("<unk>", 0, 2), ("<0x00>", 0, 6)], trainer: noByte.bytes)) {
      if case .invalidModel = $0 { return true } else { return false }
    }
    XCTAssertThrowsError(try SentencePieceModel(contentsOf: "/nonexistent/spiece.model")) { error in
      XCTAssertTrue("\(error)".contains("/nonexistent/spiece.model"))
    }
    XCTAssertThrowsError(try T5Tokenizer(SentencePieceTokenizer(model: SentencePieceModel(bytes: good))))
  }
}
