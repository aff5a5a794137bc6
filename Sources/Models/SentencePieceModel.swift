import Foundation

/// Errors of the SentencePiece reader and tokenizer; each names the file.
public enum SentencePieceError: Error, Equatable, CustomStringConvertible {
  /// The file cannot be read.
  case unreadable(path: String, reason: String)
  /// The protobuf bytes are broken (truncated varint, length past the end, bad wire type) at a byte offset.
  case malformed(path: String, offset: Int, reason: String)
  /// The model is well-formed protobuf but not a usable model (no `<unk>`, duplicate pieces, bad charsmap…).
  case invalidModel(path: String, reason: String)
  /// A model type or option this tokenizer does not implement (BPE, WORD, CHAR).
  case unsupported(path: String, reason: String)

  public var description: String {
    switch self {
    case .unreadable(let path, let reason): return "\(path): cannot read SentencePiece model: \(reason)"
    case .malformed(let path, let offset, let reason):
      return "\(path): malformed SentencePiece model at byte \(offset): \(reason)"
    case .invalidModel(let path, let reason): return "\(path): invalid SentencePiece model: \(reason)"
    case .unsupported(let path, let reason): return "\(path): unsupported SentencePiece model: \(reason)"
    }
  }
}

/// The contents of a SentencePiece `*.model` file: the `ModelProto` message of
/// google/sentencepiece `src/sentencepiece_model.proto`, decoded from the protobuf wire format.
/// Only the fields encoding needs are kept; unknown fields are skipped as protobuf requires.
public struct SentencePieceModel: Sendable {
  /// `ModelProto.SentencePiece.Type`.
  public enum PieceType: Int, Sendable {
    case normal = 1
    case unknown = 2
    case control = 3
    case userDefined = 4
    case unused = 5
    case byte = 6
  }

  /// One vocabulary entry; its id is its index in `pieces`.
  public struct Piece: Sendable, Equatable {
    /// The piece's UTF-8 bytes (`▁` stands for a space).
    public var bytes: [UInt8]
    public var score: Float
    public var type: PieceType
    public var text: String { String(decoding: bytes, as: UTF8.self) }
  }

  /// `TrainerSpec` fields that matter at encoding time (proto2 defaults when absent).
  public struct TrainerSpec: Sendable, Equatable {
    /// 1 unigram, 2 BPE, 3 word, 4 char.
    public var modelType = 1
    public var vocabSize = 8000
    public var unkId = 0
    public var bosId = 1
    public var eosId = 2
    public var padId = -1
    public var unkPiece = "<unk>"
    public var bosPiece = "<s>"
    public var eosPiece = "</s>"
    public var padPiece = "<pad>"
    public var byteFallback = false
    public var treatWhitespaceAsSuffix = false
    public var splitByWhitespace = true
    public var splitDigits = false
    public var userDefinedSymbols: [String] = []
    public var controlSymbols: [String] = []
  }

  /// `NormalizerSpec` (proto2 defaults when absent).
  public struct NormalizerSpec: Sendable, Equatable {
    public var name = ""
    /// `<uint32 trie size><darts-clone double array><NUL-separated replacement strings>`.
    public var precompiledCharsmap: [UInt8] = []
    public var addDummyPrefix = true
    public var removeExtraWhitespaces = true
    public var escapeWhitespaces = true
  }

  public var pieces: [Piece] = []
  public var trainerSpec = TrainerSpec()
  public var normalizerSpec = NormalizerSpec()
  /// Where the model came from, for error messages.
  public var location: String

  /// Reads and decodes a `*.model` file.
  public init(contentsOf path: String) throws {
    let data: Data
    do {
      data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
      throw SentencePieceError.unreadable(path: path, reason: error.localizedDescription)
    }
    try self.init(bytes: [UInt8](data), location: path)
  }

  /// Decodes a serialized `ModelProto`.
  public init(bytes: [UInt8], location: String = "<memory>") throws {
    self.location = location
    var reader = ProtoReader(bytes: bytes[...], location: location)
    while let field = try reader.nextField() {
      switch field.number {
      case 1: pieces.append(try Self.decodePiece(field.message(location)))
      case 2: trainerSpec = try Self.decodeTrainerSpec(field.message(location))
      case 3: normalizerSpec = try Self.decodeNormalizerSpec(field.message(location))
      default: break  // self_test_data, denormalizer_spec: not used for encoding
      }
    }
  }

  private static func decodePiece(_ r: ProtoReader) throws -> Piece {
    var r = r
    var piece = Piece(bytes: [], score: 0, type: .normal)
    while let f = try r.nextField() {
      switch f.number {
      case 1: piece.bytes = try Array(f.bytes(r.location))
      case 2: piece.score = try f.float(r.location)
      case 3:
        let raw = try f.varint(r.location)
        guard let t = PieceType(rawValue: Int(truncatingIfNeeded: raw)) else {
          throw SentencePieceError.invalidModel(path: r.location, reason: "unknown piece type \(raw)")
        }
        piece.type = t
      default: break
      }
    }
    return piece
  }

  private static func decodeTrainerSpec(_ r: ProtoReader) throws -> TrainerSpec {
    var r = r
    var s = TrainerSpec()
    let loc = r.location
    while let f = try r.nextField() {
      switch f.number {
      case 3: s.modelType = try f.int32(loc)
      case 4: s.vocabSize = try f.int32(loc)
      case 22: s.splitByWhitespace = try f.bool(loc)
      case 24: s.treatWhitespaceAsSuffix = try f.bool(loc)
      case 25: s.splitDigits = try f.bool(loc)
      case 30: s.controlSymbols.append(try f.string(loc))
      case 31: s.userDefinedSymbols.append(try f.string(loc))
      case 35: s.byteFallback = try f.bool(loc)
      case 40: s.unkId = try f.int32(loc)
      case 41: s.bosId = try f.int32(loc)
      case 42: s.eosId = try f.int32(loc)
      case 43: s.padId = try f.int32(loc)
      case 45: s.unkPiece = try f.string(loc)
      case 46: s.bosPiece = try f.string(loc)
      case 47: s.eosPiece = try f.string(loc)
      case 48: s.padPiece = try f.string(loc)
      default: break
      }
    }
    return s
  }

  private static func decodeNormalizerSpec(_ r: ProtoReader) throws -> NormalizerSpec {
    var r = r
    var s = NormalizerSpec()
    let loc = r.location
    while let f = try r.nextField() {
      switch f.number {
      case 1: s.name = try f.string(loc)
      case 2: s.precompiledCharsmap = try Array(f.bytes(loc))
      case 3: s.addDummyPrefix = try f.bool(loc)
      case 4: s.removeExtraWhitespaces = try f.bool(loc)
      case 5: s.escapeWhitespaces = try f.bool(loc)
      default: break  // normalization_rule_tsv is compiled into the charsmap at training time
      }
    }
    return s
  }
}

/// A cursor over protobuf wire-format bytes (https://protobuf.dev/programming-guides/encoding/).
struct ProtoReader {
  /// One decoded field: its number and payload (a varint, fixed bytes, or a length-delimited slice).
  struct Field {
    enum Payload {
      case varint(UInt64)
      case fixed64(UInt64)
      case fixed32(UInt32)
      case bytes(ArraySlice<UInt8>)
    }
    let number: Int
    let payload: Payload
    /// Byte offset of the field's key, for error messages.
    let offset: Int

    func wrongType(_ loc: String, _ want: String) -> SentencePieceError {
      .malformed(path: loc, offset: offset, reason: "field \(number) should be \(want)")
    }
    func varint(_ loc: String) throws -> UInt64 {
      guard case .varint(let v) = payload else { throw wrongType(loc, "a varint") }
      return v
    }
    /// int32 fields: negative values are sign-extended to 64 bits on the wire.
    func int32(_ loc: String) throws -> Int { Int(Int32(truncatingIfNeeded: try varint(loc))) }
    func bool(_ loc: String) throws -> Bool { try varint(loc) != 0 }
    func float(_ loc: String) throws -> Float {
      guard case .fixed32(let v) = payload else { throw wrongType(loc, "a 32-bit float") }
      return Float(bitPattern: v)
    }
    func bytes(_ loc: String) throws -> ArraySlice<UInt8> {
      guard case .bytes(let b) = payload else { throw wrongType(loc, "length-delimited") }
      return b
    }
    func string(_ loc: String) throws -> String { String(decoding: try bytes(loc), as: UTF8.self) }
    func message(_ loc: String) throws -> ProtoReader { ProtoReader(bytes: try bytes(loc), location: loc) }
  }

  let bytes: ArraySlice<UInt8>
  let location: String
  private(set) var position: Int

  init(bytes: ArraySlice<UInt8>, location: String) {
    self.bytes = bytes
    self.location = location
    self.position = bytes.startIndex
  }

  private mutating func readVarint() throws -> UInt64 {
    var result: UInt64 = 0
    var shift: UInt64 = 0
    let start = position
    while true {
      guard position < bytes.endIndex else {
        throw SentencePieceError.malformed(path: location, offset: start, reason: "truncated varint")
      }
      let b = bytes[position]
      position += 1
      guard shift < 64 else {
        throw SentencePieceError.malformed(path: location, offset: start, reason: "varint longer than 10 bytes")
      }
      result |= UInt64(b & 0x7f) << shift
      if b < 0x80 { return result }
      shift += 7
    }
  }

  private mutating func readFixed(_ n: Int) throws -> UInt64 {
    guard bytes.endIndex - position >= n else {
      throw SentencePieceError.malformed(path: location, offset: position, reason: "truncated \(n * 8)-bit field")
    }
    var v: UInt64 = 0
    for i in 0..<n { v |= UInt64(bytes[position + i]) << (8 * UInt64(i)) }
    position += n
    return v
  }

  /// The next field, or nil at the end of the message.
  mutating func nextField() throws -> Field? {
    guard position < bytes.endIndex else { return nil }
    let offset = position
    let key = try readVarint()
    let number = Int(key >> 3)
    guard number > 0 else {
      throw SentencePieceError.malformed(path: location, offset: offset, reason: "field number 0")
    }
    switch key & 7 {
    case 0: return Field(number: number, payload: .varint(try readVarint()), offset: offset)
    case 1: return Field(number: number, payload: .fixed64(try readFixed(8)), offset: offset)
    case 5: return Field(number: number, payload: .fixed32(UInt32(try readFixed(4))), offset: offset)
    case 2:
      let length = try readVarint()
      guard length <= UInt64(bytes.endIndex - position) else {
        throw SentencePieceError.malformed(
          path: location, offset: offset, reason: "field \(number) length \(length) runs past the end")
      }
      let slice = bytes[position..<(position + Int(length))]
      position += Int(length)
      return Field(number: number, payload: .bytes(slice), offset: offset)
    default:
      throw SentencePieceError.malformed(
        path: location, offset: offset, reason: "unsupported wire type \(key & 7) for field \(number)")
    }
  }
}
