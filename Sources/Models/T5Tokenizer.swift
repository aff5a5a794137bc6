import Foundation

/// The text side of CogView3's `FrozenT5Embedder` (official reference §2.1): transformers'
/// `T5Tokenizer(text, truncation=True, max_length=225, padding="max_length").input_ids` on T5's
/// `spiece.model`.
///
/// What that call does, and this type reproduces (checked against transformers 5.23 and sentencepiece
/// 0.2.3 by the tokenizer fixtures):
/// - The special tokens `<pad>`, `</s>`, `<unk>` and the 100 sentinels `<extra_id_0…99>` are cut out
///   of the raw text first (leftmost, longest match) and become their ids; each stretch of text between
///   them is encoded on its own by SentencePiece (so each gets its own `▁` prefix).
/// - The sentinels are not in `spiece.model`: transformers appends them after the file's pieces in
///   reverse order, `<extra_id_i>` = pieceCount + 99 − i (T5: `<extra_id_0>` = 32099, vocabulary 32100;
///   the checkpoint's embedding has 32128 rows, the last 28 never used).
/// - Truncation keeps room for the end token: at most `maxLength − 1` ids, then `</s>` (id 1), then
///   `<pad>` (id 0) up to `maxLength`. No attention mask is returned: CogView3 does not use one.
public struct T5Tokenizer: Sendable {
  public let sentencePiece: SentencePieceTokenizer
  public let extraIds: Int
  public let padId: Int
  public let eosId: Int
  /// Special-token text → id, for the split of the raw text.
  let specialTokens: [(text: [UInt8], id: Int)]

  /// CogView3's sequence length (`FrozenT5Embedder(max_length=225)`).
  public static let cogView3Length = 225

  public init(contentsOf path: String, extraIds: Int = 100) throws {
    try self.init(SentencePieceTokenizer(contentsOf: path), extraIds: extraIds)
  }

  public init(_ sentencePiece: SentencePieceTokenizer, extraIds: Int = 100) throws {
    self.sentencePiece = sentencePiece
    self.extraIds = extraIds
    let loc = sentencePiece.model.location
    func required(_ piece: String) throws -> Int {
      guard let id = sentencePiece.id(of: piece) else {
        throw SentencePieceError.invalidModel(path: loc, reason: "T5 needs the piece '\(piece)' in the vocabulary")
      }
      return id
    }
    padId = try required("<pad>")
    eosId = try required("</s>")
    var specials: [(text: [UInt8], id: Int)] = [
      (Array("<pad>".utf8), padId), (Array("</s>".utf8), eosId), (Array("<unk>".utf8), try required("<unk>")),
    ]
    for i in 0..<extraIds {
      specials.append((Array("<extra_id_\(i)>".utf8), sentencePiece.pieceCount + extraIds - 1 - i))
    }
    specialTokens = specials
  }

  /// Ids of `text` with no end token, truncation or padding (`add_special_tokens=False`).
  public func encode(_ text: String) throws -> [Int] {
    var ids: [Int] = []
    for segment in split(text) {
      switch segment {
      case .special(let id): ids.append(id)
      case .text(let s): ids += try sentencePiece.encode(s)
      }
    }
    return ids
  }

  /// The CogView3 call: `encode`, cut to `maxLength − 1`, `</s>`, then `<pad>` up to `maxLength`.
  public func inputIds(_ text: String, maxLength: Int = T5Tokenizer.cogView3Length) throws -> [Int] {
    guard maxLength >= 1 else {
      throw SentencePieceError.invalidModel(
        path: sentencePiece.model.location, reason: "maxLength \(maxLength) leaves no room for </s>")
    }
    var ids = Array(try encode(text).prefix(maxLength - 1))
    ids.append(eosId)
    ids += [Int](repeating: padId, count: maxLength - ids.count)
    return ids
  }

  enum Segment: Equatable {
    case text(String)
    case special(Int)
  }

  /// Cuts the special tokens out of `text`, leftmost first and the longest at a position.
  func split(_ text: String) -> [Segment] {
    let bytes = Array(text.utf8)
    var segments: [Segment] = []
    var textStart = 0
    var i = 0
    while i < bytes.count {
      var best: (length: Int, id: Int)?
      if bytes[i] == UInt8(ascii: "<") {
        for (token, id) in specialTokens where token.count > (best?.length ?? 0) {
          if i + token.count <= bytes.count, bytes[i..<(i + token.count)].elementsEqual(token) {
            best = (token.count, id)
          }
        }
      }
      if let best {
        if textStart < i { segments.append(.text(String(decoding: bytes[textStart..<i], as: UTF8.self))) }
        segments.append(.special(best.id))
        i += best.length
        textStart = i
      } else {
        i += 1
      }
    }
    if textStart < bytes.count {
      segments.append(.text(String(decoding: bytes[textStart...], as: UTF8.self)))
    }
    return segments
  }
}
