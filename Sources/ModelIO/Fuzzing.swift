import Foundation
import Tensor

/// Entry point for the fuzz driver (Tests/Fuzz): feeds one input to every reader that parses
/// untrusted bytes — the safetensors header, the zip + pickle checkpoint path (with every tensor
/// read back), the bare unpickler and the PNG decoder. Errors are expected; crashes, hangs and large
/// allocations are the findings.
public enum ModelIOFuzz {
  /// Runs all readers on `bytes`; returns how many accepted the input (for corpus statistics).
  @discardableResult
  public static func run(_ bytes: UnsafeRawBufferPointer) -> Int {
    var accepted = 0
    if let header = try? SafetensorsFile.parseHeader(bytes, path: "fuzz") {
      accepted += 1
      // Serve each tensor the way stored() would, from a heap copy.
      let storage = ByteStorage(copying: bytes)
      for e in header.entries.values {
        if let t = try? StoredTensor(
          dtype: e.dtype, shape: e.shape, storage: storage, offset: header.dataStart + e.begin),
          t.dtype.isFloatingPoint
        {
          _ = try? t.toFloat32()
        }
      }
    }
    let file = MappedFile(copying: bytes, name: "fuzz.pt")
    if let archive = try? ZipArchive(file: file) {
      for e in archive.entries.prefix(64) { _ = try? archive.contents(e, verify: true) }
      if let ck = try? TorchCheckpoint(archive: archive, select: []) {
        accepted += 1
        for k in ck.keys.prefix(64) {
          if let t = try? ck.stored(k) { _ = checksum(t.bytes) }
        }
      }
    }
    if (try? RestrictedUnpickler(path: "fuzz").load(bytes)) != nil { accepted += 1 }
    if (try? PNGImage.decode(Data(bytes), name: "fuzz", maxBytes: 64 << 20)) != nil { accepted += 1 }
    return accepted
  }

  @inline(never)
  static func checksum(_ b: UnsafeRawBufferPointer) -> UInt8 { b.reduce(0, &+) }
}
