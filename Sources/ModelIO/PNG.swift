import CPNGBridge
import Foundation
import Tensor

/// A PNG text chunk: tEXt (Latin-1) or, when `international`, iTXt (UTF-8).
public struct PNGText: Sendable, Hashable, Codable {
  public var keyword: String
  public var text: String
  public var international: Bool

  public init(_ keyword: String, _ text: String, international: Bool = true) {
    self.keyword = keyword
    self.text = text
    self.international = international
  }
}

/// How float pixels map to [0, 1].
public enum PixelRange: String, Sendable, Codable {
  /// x itself.
  case zeroOne
  /// (x + 1) / 2: the VAE's range.
  case minusOneOne
}

/// How [0, 1] floats become 8-bit samples.
public enum Quantization: String, Sendable, Codable {
  /// ⌊255·x⌋, what the official sampler does (`(255 * x).astype(np.uint8)` in `sat/sample_unet.py`).
  case truncate
  /// ⌊255·x + 0.5⌋.
  case round
}

/// A decoded PNG: samples interleaved row-major as [H, W, C] (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA),
/// palette and low-bit gray already expanded, values 0…255 (8-bit) or 0…65535 (16-bit).
public struct PNGImage: Sendable, Equatable {
  public var width: Int
  public var height: Int
  public var channels: Int
  public var bitDepth: Int
  public var samples: [UInt16]
  public var text: [PNGText]

  /// Decoded images larger than this are refused before any pixel memory is allocated.
  public static let defaultMaxBytes = 1 << 30

  public init(width: Int, height: Int, channels: Int, bitDepth: Int = 8, samples: [UInt16], text: [PNGText] = [])
    throws
  {
    guard width > 0, height > 0, (1...4).contains(channels), bitDepth == 8 || bitDepth == 16,
      samples.count == width * height * channels
    else {
      throw ModelIOError.malformed(
        path: "<image>", tensor: nil,
        reason: "\(width)x\(height)x\(channels) at \(bitDepth) bits does not match \(samples.count) samples")
    }
    self.width = width
    self.height = height
    self.channels = channels
    self.bitDepth = bitDepth
    self.samples = samples
    self.text = text
  }

  public var maxValue: Float { bitDepth == 16 ? 65535 : 255 }

  /// The first text chunk with this keyword.
  public func text(_ keyword: String) -> String? { text.first { $0.keyword == keyword }?.text }

  // MARK: reading

  public static func read(path: String, maxBytes: Int = defaultMaxBytes) throws -> PNGImage {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw ModelIOError.unreadable(path: path, reason: "cannot open")
    }
    return try decode(data, name: path, maxBytes: maxBytes)
  }

  public static func decode(_ data: Data, name: String = "<memory>", maxBytes: Int = defaultMaxBytes) throws
    -> PNGImage
  {
    var raw = cf_png_image()
    var message = [CChar](repeating: 0, count: 256)
    // Rows are decoded straight into the sample array: its capacity comes from the IHDR size (at most 4
    // channels; libpng checks the header again), so the decoded image is never held twice. 8-bit samples are
    // widened to UInt16 in place, from the end. Pages beyond what an image with fewer channels uses are
    // never touched.
    var capacity = 0
    if data.count >= 24 {
      let w = data.withUnsafeBytes { Int(UInt32(bigEndian: $0.loadUnaligned(fromByteOffset: 16, as: UInt32.self))) }
      let h = data.withUnsafeBytes { Int(UInt32(bigEndian: $0.loadUnaligned(fromByteOffset: 20, as: UInt32.self))) }
      let (n, o) = w.multipliedReportingOverflow(by: h)
      if !o, n > 0, n <= max(maxBytes, 0) / 4 { capacity = n * 4 }
    }
    var rc: Int32 = 0
    let samples = [UInt16](unsafeUninitializedCapacity: max(capacity, 1)) { buffer, initialized in
      raw.into = capacity > 0 ? UnsafeMutableRawPointer(buffer.baseAddress)?.assumingMemoryBound(to: UInt8.self) : nil
      raw.into_capacity = capacity * 2
      rc = data.withUnsafeBytes { bytes in
        cf_png_decode(
          bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count, max(maxBytes, 0), &raw, &message,
          message.count)
      }
      initialized = 0
      guard rc == 0, let base = buffer.baseAddress else { return }
      let count = Int(raw.width) * Int(raw.height) * Int(raw.channels)
      if raw.pixels_in_caller != 0 {
        if raw.bit_depth != 16 {
          let bytes = UnsafeMutableRawPointer(base).assumingMemoryBound(to: UInt8.self)
          var i = count
          while i > 0 {
            i -= 1
            base[i] = UInt16(bytes[i])  // byte i is read before bytes 2i, 2i+1 are written
          }
        }
        initialized = count
      }
    }
    defer { cf_png_image_free(&raw) }
    guard rc == 0 else {
      let reason = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      throw ModelIOError.malformed(path: name, tensor: nil, reason: "PNG: \(reason)")
    }
    let count = Int(raw.width) * Int(raw.height) * Int(raw.channels)
    var copied = samples
    if raw.pixels_in_caller == 0 {
      // The image did not fit the IHDR-sized buffer (not expected): copy from libpng's own buffer.
      copied = [UInt16](repeating: 0, count: count)
      if let px = raw.pixels {
        if raw.bit_depth == 16 {
          let s = UnsafeRawPointer(px).assumingMemoryBound(to: UInt16.self)
          for i in 0..<count { copied[i] = s[i] }
        } else {
          for i in 0..<count { copied[i] = UInt16(px[i]) }
        }
      }
    }
    var texts: [PNGText] = []
    for i in 0..<raw.text_count {
      let t = raw.texts[i]
      let key = latin1(t.key, strlen(t.key))
      let international = t.international != 0
      let value: String
      if let p = t.text {
        let bytes = UnsafeRawBufferPointer(start: p, count: t.text_length)
        value = international ? String(decoding: bytes, as: UTF8.self) : latin1(p, t.text_length)
      } else {
        value = ""
      }
      texts.append(PNGText(key, value, international: international))
    }
    return try PNGImage(
      width: Int(raw.width), height: Int(raw.height), channels: Int(raw.channels), bitDepth: Int(raw.bit_depth),
      samples: copied, text: texts)
  }

  private static func latin1(_ p: UnsafePointer<CChar>?, _ n: Int) -> String {
    guard let p else { return "" }
    let b = UnsafeRawBufferPointer(start: p, count: n)
    return String(String.UnicodeScalarView(b.map { Unicode.Scalar($0) }))
  }

  // MARK: writing

  /// Encodes as 8-bit RGB or RGBA (16-bit images are reduced by truncating the low byte).
  public func encode(name: String = "<memory>") throws -> Data {
    guard channels == 3 || channels == 4 else {
      throw ModelIOError.unwritable(
        path: name, reason: "only RGB and RGBA images are written (this one has \(channels) channels)")
    }
    let shift: UInt16 = bitDepth == 16 ? 8 : 0
    let pixels = samples.map { UInt8(truncatingIfNeeded: $0 >> shift) }
    var keys: [[CChar]] = []
    var values: [[CChar]] = []
    for t in text {
      keys.append(try Self.keyword(t.keyword, name) + [0])
      if t.international {
        values.append(Array(t.text.utf8).map { CChar(bitPattern: $0) } + [0])
      } else {
        var bytes: [CChar] = []
        for u in t.text.unicodeScalars {
          guard u.value < 256 else {
            throw ModelIOError.unwritable(
              path: name, reason: "tEXt '\(t.keyword)' is not Latin-1; mark it international (iTXt)")
          }
          bytes.append(CChar(bitPattern: UInt8(u.value)))
        }
        values.append(bytes + [0])
      }
    }
    var message = [CChar](repeating: 0, count: 256)
    var out: UnsafeMutablePointer<UInt8>?
    var outSize = 0
    let rc = try withPointers(keys) { kp in
      try withPointers(values) { vp -> Int32 in
        var chunks: [cf_png_text] = []
        for i in text.indices {
          chunks.append(
            cf_png_text(
              key: kp[i], text: vp[i], text_length: values[i].count - 1, international: text[i].international ? 1 : 0))
        }
        return chunks.withUnsafeBufferPointer { cp in
          pixels.withUnsafeBufferPointer { px in
            cf_png_encode(
              px.baseAddress, UInt32(width), UInt32(height), Int32(channels), cp.baseAddress, cp.count, &out,
              &outSize, &message, message.count)
          }
        }
      }
    }
    defer { cf_png_buffer_free(out) }
    guard rc == 0, let out else {
      let reason = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
      throw ModelIOError.unwritable(path: name, reason: "PNG: \(reason)")
    }
    return Data(bytes: out, count: outSize)
  }

  /// Writes the PNG atomically (temp file + rename).
  public func write(to path: String) throws {
    let data = try encode(name: path)
    try AtomicFile.write(to: path) { sink in try data.withUnsafeBytes { try sink($0) } }
  }

  /// PNG keywords: 1–79 Latin-1 printable characters, no leading, trailing or doubled spaces.
  private static func keyword(_ k: String, _ name: String) throws -> [CChar] {
    let scalars = Array(k.unicodeScalars)
    let ok =
      (1...79).contains(scalars.count)
      && scalars.allSatisfy { (32...126).contains($0.value) || (161...255).contains($0.value) }
      && scalars.first != " " && scalars.last != " " && !k.contains("  ")
    guard ok else { throw ModelIOError.unwritable(path: name, reason: "invalid PNG text keyword '\(k)'") }
    return scalars.map { CChar(bitPattern: UInt8($0.value)) }
  }

  private func withPointers<R>(_ arrays: [[CChar]], _ body: ([UnsafeMutablePointer<CChar>]) throws -> R) throws -> R {
    // Copies into one stable buffer so every pointer stays valid for the whole call.
    let total = arrays.reduce(0) { $0 + $1.count }
    let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(total, 1))
    defer { buffer.deallocate() }
    var pointers: [UnsafeMutablePointer<CChar>] = []
    var at = 0
    for a in arrays {
      (buffer + at).initialize(from: a, count: a.count)
      pointers.append(buffer + at)
      at += a.count
    }
    return try body(pointers)
  }

  // MARK: tensors

  /// The image as a float tensor [1, C, H, W] in `range`.
  public func tensor(range: PixelRange = .zeroOne) -> Tensor {
    let hw = width * height
    let scale = maxValue
    return Tensor(uninitializedShape: [1, channels, height, width]) { out in
      for c in 0..<channels {
        for i in 0..<hw {
          let v = Float(samples[i * channels + c]) / scale  // division, as torchvision's to_tensor
          out[c * hw + i] = range == .zeroOne ? v : v * 2 - 1
        }
      }
    }
  }

  /// An 8-bit image from a float tensor [1, C, H, W] (C = 1…4) in `range`: clamped to [0, 1], then
  /// truncated (the official behaviour) or rounded to 0…255. NaN becomes 0.
  public init(
    tensor: Tensor, range: PixelRange = .zeroOne, quantization: Quantization = .truncate, text: [PNGText] = []
  ) throws {
    let s = tensor.shape
    guard s.count == 4, s[0] == 1, (1...4).contains(s[1]), s[2] > 0, s[3] > 0 else {
      throw ModelIOError.malformed(
        path: "<tensor>", tensor: nil, reason: "an image tensor must be [1, C (1-4), H, W], got \(s)")
    }
    let (c, h, w) = (s[1], s[2], s[3])
    let hw = h * w
    var samples = [UInt16](repeating: 0, count: hw * c)
    let offset: Float = quantization == .round ? 0.5 : 0
    tensor.withUnsafeBufferPointer { x in
      for ch in 0..<c {
        for i in 0..<hw {
          var v = x[ch * hw + i]
          if range == .minusOneOne { v = (v + 1) / 2 }
          v = v.isNaN ? 0 : min(max(v, 0), 1)
          samples[i * c + ch] = UInt16(v * 255 + offset)
        }
      }
    }
    try self.init(width: w, height: h, channels: c, bitDepth: 8, samples: samples, text: text)
  }
}
