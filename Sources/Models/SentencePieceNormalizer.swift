import Foundation

/// The normalization rules a SentencePiece model carries (T5: `nmt_nfkc`), stored as a
/// darts-clone double-array trie over UTF-8 byte strings whose values are offsets into a blob of
/// NUL-terminated replacement strings. Layout (google/sentencepiece `normalizer.cc`,
/// `DecodePrecompiledCharsMap`): `<uint32 LE trie byte size><trie units, uint32 LE><replacement blob>`.
struct PrecompiledCharsMap: Sendable {
  private let units: [UInt32]
  private let replacements: [UInt8]

  init(blob: [UInt8], location: String) throws {
    guard blob.count > 4 else {
      throw SentencePieceError.invalidModel(path: location, reason: "precompiled charsmap shorter than 5 bytes")
    }
    let trieSize = Int(blob[0]) | Int(blob[1]) << 8 | Int(blob[2]) << 16 | Int(blob[3]) << 24
    guard trieSize < blob.count - 4, trieSize % 4 == 0, trieSize > 0 else {
      throw SentencePieceError.invalidModel(
        path: location, reason: "charsmap trie size \(trieSize) does not fit the \(blob.count)-byte blob")
    }
    units = (0..<(trieSize / 4)).map { i in
      let o = 4 + 4 * i
      return UInt32(blob[o]) | UInt32(blob[o + 1]) << 8 | UInt32(blob[o + 2]) << 16 | UInt32(blob[o + 3]) << 24
    }
    replacements = Array(blob[(4 + trieSize)...])
  }

  // A darts-clone unit packs: label (bits 0–7, plus bit 31 marking a value unit), has-leaf (bit 8),
  // and an offset to the children (bits 10–31, scaled by 2^8 when bit 9 is set); a value unit holds
  // its value in bits 0–30. (darts-clone `DoubleArrayUnit`.)
  @inline(__always) private static func hasLeaf(_ u: UInt32) -> Bool { (u >> 8) & 1 == 1 }
  @inline(__always) private static func value(_ u: UInt32) -> Int { Int(u & 0x7fff_ffff) }
  @inline(__always) private static func label(_ u: UInt32) -> UInt32 { u & (0x8000_0000 | 0xff) }
  @inline(__always) private static func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }

  /// The longest rule matching a prefix of `input[start...]`: (matched byte count, replacement bytes),
  /// or nil when no rule matches. Walks the double array as darts-clone's `commonPrefixSearch` does.
  func longestMatch(_ input: UnsafeBufferPointer<UInt8>, from start: Int, location: String) throws
    -> (length: Int, replacement: ArraySlice<UInt8>)?
  {
    var id = Self.offset(units[0])
    var best: (Int, Int)?
    var i = start
    while i < input.count {
      let c = input[i]
      id ^= Int(c)
      guard id >= 0, id < units.count else { break }
      let unit = units[id]
      if Self.label(unit) != UInt32(c) { break }
      id ^= Self.offset(unit)
      guard id >= 0, id < units.count else { break }
      if Self.hasLeaf(unit) { best = (i + 1 - start, Self.value(units[id])) }
      i += 1
    }
    guard let (length, value) = best else { return nil }
    guard value < replacements.count else {
      throw SentencePieceError.invalidModel(
        path: location, reason: "charsmap value \(value) points past the \(replacements.count)-byte replacement blob")
    }
    let end = replacements[value...].firstIndex(of: 0) ?? replacements.endIndex
    return (length, replacements[value..<end])
  }
}

/// A small byte trie: longest-prefix and all-prefix matches over UTF-8 strings. Used for the
/// vocabulary (Viterbi) and the user-defined-symbol matcher; SentencePiece builds these at load time
/// rather than storing them, so any trie shape gives the same matches.
struct ByteTrie: Sendable {
  // Node n's children are edges[childStart[n] ..< childStart[n + 1]], sorted by label.
  private var childStart: [Int32] = []
  private var edgeLabel: [UInt8] = []
  private var edgeTarget: [Int32] = []
  /// The value stored at a node, or -1.
  private var nodeValue: [Int32] = []

  init(_ entries: [(key: [UInt8], value: Int)]) {
    // Build with per-node dictionaries, then flatten breadth-first into sorted edge arrays.
    var children: [[UInt8: Int]] = [[:]]
    var values: [Int] = [-1]
    for (key, value) in entries where !key.isEmpty {
      var node = 0
      for b in key {
        if let next = children[node][b] {
          node = next
        } else {
          children.append([:])
          values.append(-1)
          children[node][b] = children.count - 1
          node = children.count - 1
        }
      }
      values[node] = value
    }
    var order = [0]
    var newIndex = [Int](repeating: -1, count: children.count)
    newIndex[0] = 0
    var head = 0
    while head < order.count {
      let old = order[head]
      head += 1
      for (_, child) in children[old].sorted(by: { $0.key < $1.key }) {
        newIndex[child] = order.count
        order.append(child)
      }
    }
    childStart.reserveCapacity(order.count + 1)
    for old in order {
      childStart.append(Int32(edgeLabel.count))
      nodeValue.append(Int32(values[old]))
      for (label, child) in children[old].sorted(by: { $0.key < $1.key }) {
        edgeLabel.append(label)
        edgeTarget.append(Int32(newIndex[child]))
      }
    }
    childStart.append(Int32(edgeLabel.count))
  }

  @inline(__always) private func child(_ node: Int, _ label: UInt8) -> Int? {
    var lo = Int(childStart[node])
    var hi = Int(childStart[node + 1])
    while lo < hi {
      let mid = (lo + hi) >> 1
      let l = edgeLabel[mid]
      if l == label { return Int(edgeTarget[mid]) }
      if l < label { lo = mid + 1 } else { hi = mid }
    }
    return nil
  }

  /// Calls `body(length, value)` for every key that is a prefix of `input[start...]`, shortest first.
  @inline(__always) func forEachPrefix(
    _ input: UnsafeBufferPointer<UInt8>, from start: Int, _ body: (Int, Int) -> Void
  ) {
    var node = 0
    var i = start
    while i < input.count, let next = child(node, input[i]) {
      node = next
      i += 1
      let v = nodeValue[node]
      if v >= 0 { body(i - start, Int(v)) }
    }
  }

  /// The length of the longest key that is a prefix of `input[start...]`, or 0.
  func longestPrefix(_ input: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
    var longest = 0
    forEachPrefix(input, from: start) { length, _ in longest = length }
    return longest
  }
}

/// SentencePiece's normalizer (google/sentencepiece `normalizer.cc`, `Normalizer::Normalize`):
/// per character, the longest charsmap rule (or a user-defined symbol, kept as is), then the
/// whitespace rules of the `NormalizerSpec`: drop leading, trailing and repeated spaces, add the
/// dummy-prefix space, and write spaces as U+2581 `▁`.
struct SentencePieceNormalizer: Sendable {
  let spec: SentencePieceModel.NormalizerSpec
  let treatWhitespaceAsSuffix: Bool
  let charsMap: PrecompiledCharsMap?
  let userDefined: ByteTrie?
  let location: String

  static let spaceSymbol: [UInt8] = [0xe2, 0x96, 0x81]

  init(model: SentencePieceModel, userDefined: ByteTrie?) throws {
    spec = model.normalizerSpec
    treatWhitespaceAsSuffix = model.trainerSpec.treatWhitespaceAsSuffix
    location = model.location
    charsMap =
      spec.precompiledCharsmap.isEmpty
      ? nil : try PrecompiledCharsMap(blob: spec.precompiledCharsmap, location: model.location)
    self.userDefined = userDefined
  }

  /// Byte length of the UTF-8 sequence a lead byte starts (SentencePiece's `OneCharLen` table:
  /// continuation and invalid lead bytes count as 1).
  @inline(__always) static func charLength(_ lead: UInt8) -> Int {
    switch lead >> 4 {
    case 0xc, 0xd: return 2
    case 0xe: return 3
    case 0xf: return 4
    default: return 1
    }
  }

  /// The normalized form of the prefix of `input[start...]`: (replacement bytes, bytes consumed).
  private func normalizePrefix(_ input: UnsafeBufferPointer<UInt8>, _ start: Int) throws
    -> (ArraySlice<UInt8>, Int)
  {
    if let userDefined {
      let n = userDefined.longestPrefix(input, from: start)
      if n > 0 { return (ArraySlice(input[start..<(start + n)]), n) }
    }
    if let charsMap, let m = try charsMap.longestMatch(input, from: start, location: location) {
      return (m.replacement, m.length)
    }
    // Swift strings are valid UTF-8, so the character is copied whole.
    let n = min(Self.charLength(input[start]), input.count - start)
    return (ArraySlice(input[start..<(start + n)]), n)
  }

  /// Normalizes UTF-8 `text`.
  func normalize(_ text: [UInt8]) throws -> [UInt8] {
    try text.withUnsafeBufferPointer { input in
      var pos = 0
      if spec.removeExtraWhitespaces {
        while pos < input.count {
          let (sp, n) = try normalizePrefix(input, pos)
          if sp.count != 1 || sp.first != 0x20 { break }
          pos += n
        }
      }
      guard pos < input.count else { return [] }
      var out: [UInt8] = []
      out.reserveCapacity((input.count - pos) * 3)
      let space: [UInt8] = spec.escapeWhitespaces ? Self.spaceSymbol : [0x20]
      if !treatWhitespaceAsSuffix && spec.addDummyPrefix { out += space }
      var isPrevSpace = spec.removeExtraWhitespaces
      while pos < input.count {
        var (sp, n) = try normalizePrefix(input, pos)
        while isPrevSpace, sp.first == 0x20 { sp = sp.dropFirst() }
        if !sp.isEmpty {
          for b in sp {
            if spec.escapeWhitespaces && b == 0x20 { out += Self.spaceSymbol } else { out.append(b) }
          }
          isPrevSpace = sp.last == 0x20
        }
        pos += n
        if !spec.removeExtraWhitespaces { isPrevSpace = false }
      }
      if spec.removeExtraWhitespaces {
        while out.count >= space.count, Array(out.suffix(space.count)) == space {
          out.removeLast(space.count)
        }
      }
      if treatWhitespaceAsSuffix && spec.addDummyPrefix { out += space }
      return out
    }
  }
}
