import Foundation

extension ToyNodes {
  /// A small PNG drawn from `a` (and `seed`): lets the sharding, Slurm and report tests make real images
  /// without models. Output type "png" holds the file's bytes; `cogflow report` shows any PNG output.
  public static let image = ClosureNodeType(
    NodeTypeSpec(
      name: "toy.image", version: 1, doc: "a size×size RGB PNG whose pattern depends on a and seed",
      inputs: [PortSpec("a", "int", optional: true)], outputs: [PortSpec("image", "png")],
      params: [
        ParamSpec("seed", .int, default: .int(0), doc: "varies the pattern"),
        ParamSpec("size", .int, default: .int(32), min: 1, max: 512, doc: "width and height in pixels"),
        ParamSpec("ms", .int, default: .int(0), min: 0, max: 600_000, doc: "milliseconds to sleep first"),
        ParamSpec("log", .string, default: .string(""), doc: "file that gets '<node> <key>' per run (none when empty)"),
      ],
      resource: .heavy)
  ) { inputs, params, context in
    let ms = try params.int("ms")
    var slept = 0
    while slept < ms {
      try context.progress(step: slept / 10, total: max(1, ms / 10))
      usleep(10_000)
      slept += 10
    }
    let log = try params.string("log")
    if !log.isEmpty { try appendLine("\(context.node) \(context.key)", to: log) }
    let size = try params.int("size")
    var state =
      UInt64(bitPattern: Int64(try intValue(inputs["a"]))) &* 0x9E37_79B9_7F4A_7C15
      ^ UInt64(bitPattern: Int64(try params.int("seed")))
    var pixels = [UInt8](repeating: 0, count: size * size * 3)
    let base = (UInt8(truncatingIfNeeded: state >> 8), UInt8(truncatingIfNeeded: state >> 24))
    for y in 0..<size {
      for x in 0..<size {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let i = (y * size + x) * 3
        pixels[i] = base.0 &+ UInt8(truncatingIfNeeded: x * 255 / max(1, size - 1))
        pixels[i + 1] = base.1 &+ UInt8(truncatingIfNeeded: y * 255 / max(1, size - 1))
        pixels[i + 2] = UInt8(truncatingIfNeeded: state >> 56)
      }
    }
    return ["image": Artifact(type: "png", bytes: StoredPNG.rgb(width: size, height: size, pixels: pixels))]
  }
}

/// Writes 8-bit RGB PNGs with uncompressed ("stored") deflate blocks: valid for every decoder, no zlib needed.
enum StoredPNG {
  static func rgb(width: Int, height: Int, pixels: [UInt8]) -> Data {
    var raw = [UInt8]()
    raw.reserveCapacity(height * (width * 3 + 1))
    for y in 0..<height {
      raw.append(0)  // filter: none
      raw += pixels[(y * width * 3)..<((y + 1) * width * 3)]
    }
    var zlib: [UInt8] = [0x78, 0x01]
    var offset = 0
    repeat {
      let n = min(65_535, raw.count - offset)
      let last: UInt8 = offset + n == raw.count ? 1 : 0
      zlib += [last, UInt8(n & 0xff), UInt8(n >> 8), UInt8(~n & 0xff), UInt8((~n >> 8) & 0xff)]
      zlib += raw[offset..<(offset + n)]
      offset += n
    } while offset < raw.count
    zlib += bigEndian(adler32(raw))

    var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    png += chunk("IHDR", bigEndian(UInt32(width)) + bigEndian(UInt32(height)) + [8, 2, 0, 0, 0])
    png += chunk("IDAT", zlib)
    png += chunk("IEND", [])
    return Data(png)
  }

  static func bigEndian(_ v: UInt32) -> [UInt8] {
    [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]
  }

  static func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
    let typed = Array(type.utf8) + body
    return bigEndian(UInt32(body.count)) + typed + bigEndian(crc32(typed))
  }

  /// CRC-32 (ISO 3309, reflected 0xEDB88320), as the PNG specification requires for chunks.
  static func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xffff_ffff
    for byte in bytes {
      crc ^= UInt32(byte)
      for _ in 0..<8 { crc = (crc >> 1) ^ (crc & 1 == 1 ? 0xEDB8_8320 : 0) }
    }
    return ~crc
  }

  /// Adler-32 (RFC 1950), the zlib stream's trailer.
  static func adler32(_ bytes: [UInt8]) -> UInt32 {
    var a: UInt32 = 1
    var b: UInt32 = 0
    for byte in bytes {
      a = (a + UInt32(byte)) % 65_521
      b = (b + a) % 65_521
    }
    return (b << 16) | a
  }
}
