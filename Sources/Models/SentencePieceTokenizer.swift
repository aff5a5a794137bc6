import Foundation

/// A SentencePiece Unigram tokenizer read from a `*.model` file, encoding as google/sentencepiece
/// does: normalize (`SentencePieceNormalizer`), best segmentation under the piece scores (Viterbi;
/// `unigram_model.cc` `Model::EncodeOptimized`), then unknown handling (`sentencepiece_processor.cc`
/// `PopulateSentencePieceText`): runs of unknown characters become one `<unk>`, or their UTF-8 bytes
/// as `<0xXX>` pieces when the model has byte fallback. Sampling, n-best and decoding are not implemented.
public struct SentencePieceTokenizer: Sendable {
  public let model: SentencePieceModel
  let normalizer: SentencePieceNormalizer
  /// NORMAL, USER_DEFINED and UNUSED pieces, for the segmentation.
  let vocabulary: ByteTrie
  /// Piece text → id for every piece (reserved pieces first, as `PieceToId` looks them up).
  let ids: [String: Int]
  public let unkId: Int
  /// Lowest and highest NORMAL score (SentencePiece starts from FLT_MAX and FLT_MIN, so the highest
  /// is never below the smallest positive float).
  let minScore: Float
  let maxScore: Float
  /// Byte value → id of its `<0xXX>` piece, when the model uses byte fallback.
  let byteIds: [Int]?

  /// SentencePiece's penalty for an unknown character below the lowest piece score.
  static let unknownPenalty: Float = 10

  public init(contentsOf path: String) throws {
    try self.init(model: SentencePieceModel(contentsOf: path))
  }

  public init(model: SentencePieceModel) throws {
    self.model = model
    let loc = model.location
    guard model.trainerSpec.modelType == 1 else {
      let names = [2: "BPE", 3: "WORD", 4: "CHAR"]
      throw SentencePieceError.unsupported(
        path: loc,
        reason: "model type \(names[model.trainerSpec.modelType] ?? "\(model.trainerSpec.modelType)"); "
          + "only UNIGRAM is implemented")
    }
    var normalIds: [String: Int] = [:]
    var reservedIds: [String: Int] = [:]
    var unk: Int?
    var userDefined: [(key: [UInt8], value: Int)] = []
    var vocabEntries: [(key: [UInt8], value: Int)] = []
    var lo = Float.greatestFiniteMagnitude
    var hi = Float.leastNormalMagnitude
    var bytes = [Int](repeating: -1, count: 256)
    for (i, p) in model.pieces.enumerated() {
      guard !p.bytes.isEmpty else {
        throw SentencePieceError.invalidModel(path: loc, reason: "piece \(i) is empty")
      }
      let isNormal = p.type == .normal || p.type == .userDefined || p.type == .unused
      if isNormal {
        guard normalIds[p.text] == nil else {
          throw SentencePieceError.invalidModel(path: loc, reason: "piece '\(p.text)' is defined twice")
        }
        normalIds[p.text] = i
        vocabEntries.append((p.bytes, i))
      } else {
        guard reservedIds[p.text] == nil else {
          throw SentencePieceError.invalidModel(path: loc, reason: "piece '\(p.text)' is defined twice")
        }
        reservedIds[p.text] = i
      }
      switch p.type {
      case .normal:
        lo = min(lo, p.score)
        hi = max(hi, p.score)
      case .userDefined: userDefined.append((p.bytes, i))
      case .unknown:
        guard unk == nil else { throw SentencePieceError.invalidModel(path: loc, reason: "two UNKNOWN pieces") }
        unk = i
      case .byte:
        guard model.trainerSpec.byteFallback else {
          throw SentencePieceError.invalidModel(
            path: loc, reason: "byte piece '\(p.text)' found although byte_fallback is false")
        }
        if let b = Self.byteValue(p.text) { bytes[b] = i }
      default: break
      }
    }
    guard let unk else { throw SentencePieceError.invalidModel(path: loc, reason: "no UNKNOWN piece") }
    if model.trainerSpec.byteFallback, let missing = bytes.firstIndex(of: -1) {
      throw SentencePieceError.invalidModel(
        path: loc, reason: "byte_fallback is set but the byte piece <0x\(String(format: "%02X", missing))> is missing")
    }
    unkId = unk
    minScore = lo
    maxScore = hi
    byteIds = model.trainerSpec.byteFallback ? bytes : nil
    ids = normalIds.merging(reservedIds) { _, reserved in reserved }
    vocabulary = ByteTrie(vocabEntries)
    normalizer = try SentencePieceNormalizer(
      model: model, userDefined: userDefined.isEmpty ? nil : ByteTrie(userDefined))
  }

  /// `<0xAB>` → 0xAB.
  static func byteValue(_ piece: String) -> Int? {
    guard piece.count == 6, piece.hasPrefix("<0x"), piece.hasSuffix(">") else { return nil }
    return Int(piece.dropFirst(3).prefix(2), radix: 16)
  }

  /// Number of pieces (the vocabulary size of the file).
  public var pieceCount: Int { model.pieces.count }

  /// The id of a piece, or nil when it is not in the vocabulary.
  public func id(of piece: String) -> Int? { ids[piece] }

  /// The normalized UTF-8 text that segmentation sees (`SentencePieceProcessor.normalize`).
  public func normalize(_ text: String) throws -> String {
    String(decoding: try normalizer.normalize(Array(text.utf8)), as: UTF8.self)
  }

  /// Piece ids of `text`, equal to Python's `SentencePieceProcessor.encode(text)`.
  public func encode(_ text: String) throws -> [Int] {
    try encodePieces(text).map(\.id)
  }

  /// (piece, id) pairs of `text`; merged unknown runs keep their text, byte-fallback pieces read `<0xXX>`.
  public func encodePieces(_ text: String) throws -> [(piece: String, id: Int)] {
    let normalized = try normalizer.normalize(Array(text.utf8))
    var out: [(piece: String, id: Int)] = []
    var prevUnknown = false
    for (range, id) in viterbi(normalized) {
      let isUnknown = model.pieces[id].type == .unknown
      let text = String(decoding: normalized[range], as: UTF8.self)
      if isUnknown, let byteIds {
        for b in normalized[range] {
          out.append((String(format: "<0x%02X>", b), byteIds[Int(b)]))
        }
      } else if isUnknown && prevUnknown {
        out[out.count - 1].piece += text
      } else {
        out.append((text, id))
      }
      prevUnknown = isUnknown
    }
    return out
  }

  /// The best segmentation of `normalized` as (byte range, id). Unknown characters get the lowest
  /// score minus 10; user-defined pieces score length·maxScore − 0.1, so they win wherever they match.
  func viterbi(_ normalized: [UInt8]) -> [(Range<Int>, Int)] {
    let size = normalized.count
    guard size > 0 else { return [] }
    // Best path ending at each byte position: score, start of its last piece, id of that piece.
    var score = [Float](repeating: 0, count: size + 1)
    var start = [Int](repeating: -1, count: size + 1)
    var bestId = [Int](repeating: -1, count: size + 1)
    let unkScore = minScore - Self.unknownPenalty
    let pieces = model.pieces
    normalized.withUnsafeBufferPointer { input in
      var pos = 0
      while pos < size {
        let here = score[pos]
        let charLength = min(SentencePieceNormalizer.charLength(input[pos]), size - pos)
        var hasSingleCharPiece = false
        vocabulary.forEachPrefix(input, from: pos) { length, id in
          let piece = pieces[id]
          if piece.type == .unused { return }
          let end = pos + length
          // The reference computes the user-defined bonus in double precision and compares before
          // storing as float; mirror it so that ties resolve identically.
          let candidate: Double =
            piece.type == .userDefined
            ? Double(Float(length) * maxScore) - 0.1 + Double(here)
            : Double(piece.score + here)
          if start[end] == -1 || candidate > Double(score[end]) {
            score[end] = Float(candidate)
            start[end] = pos
            bestId[end] = id
          }
          if length == charLength { hasSingleCharPiece = true }
        }
        if !hasSingleCharPiece {
          let end = pos + charLength
          let candidate = unkScore + here
          if start[end] == -1 || candidate > score[end] {
            score[end] = candidate
            start[end] = pos
            bestId[end] = unkId
          }
        }
        pos += charLength
      }
    }
    var result: [(Range<Int>, Int)] = []
    var end = size
    while end > 0 {
      result.append((start[end]..<end, bestId[end]))
      end = start[end]
    }
    return result.reversed()
  }
}
