import Foundation
import Tensor
import XCTest

@testable import ModelIO

final class TorchCheckpointTests: XCTestCase {
  func testSATFolderExposesTheUNetWithPrefixStripped() throws {
    let sat = try SATCheckpoint(folder: Fixture.path("sat"))
    XCTAssertEqual(sat.iteration, "1")
    let all = Fixture.tensors("sat")
    var unet: [String: Fixture.Tensor] = [:]
    for (k, v) in all where k.hasPrefix("model.diffusion_model.") { unet[String(k.dropFirst(22))] = v }
    try assertMatchesExpected(sat, unet)
    try assertMatchesExpected(sat.module, all)
    XCTAssertEqual(sat.otherPrefixes, ["first_stage_model.": 2, "conditioner.": 2])
    XCTAssertEqual(sat.module.recordPrefix, "mp_rank_00_model_states/")
    // Mixed stored dtypes come through as stored.
    XCTAssertEqual(try sat.info("out.2.weight").dtype, .f16)
    XCTAssertEqual(try sat.info("time_embed.2.weight").dtype, .bf16)
  }

  func testSATReleaseFolderWithClientState() throws {
    let sat = try SATCheckpoint(folder: Fixture.path("sat_release"))
    XCTAssertEqual(sat.iteration, "release")
    XCTAssertEqual(sat.keys.count, Fixture.tensors("sat").keys.filter { $0.hasPrefix("model.diffusion_model.") }.count)
    guard case .dict(let top) = sat.module.root else { return XCTFail("root is not a dict") }
    XCTAssertEqual(
      top.compactMap { TorchCheckpoint.keyString($0.key) }, ["module", "iteration", "client_lr_scheduler"])
  }

  func testSATFolderErrors() throws {
    assertModelIOError(["latest", "holds '../../etc'"]) {
      _ = try SATCheckpoint(folder: Fixture.path("bad/sat_bad_latest"))
    }
    assertModelIOError(["latest"]) { _ = try SATCheckpoint(folder: Fixture.path("png")) }
    let dir = try Fixture.scratch(self)
    try "7".write(toFile: dir + "/latest", atomically: true, encoding: .utf8)
    assertModelIOError(["7/mp_rank_00_model_states.pt", "missing"]) { _ = try SATCheckpoint(folder: dir) }
  }

  func testViewsOffsetsStridesAndParameters() throws {
    let ck = try TorchCheckpoint(path: Fixture.path("views.pt"))
    try assertMatchesExpected(ck, Fixture.tensors("views"))
    XCTAssertEqual(ck.reference("transposed")?.isContiguous, false)
    XCTAssertEqual(ck.reference("sliced")?.offset, 6)
    XCTAssertEqual(ck.reference("sliced")?.isContiguous, true)
    XCTAssertEqual(ck.reference("expanded")?.strides, [0, 1])
    // A contiguous view is served from the mapping, not copied.
    let sliced = try ck.stored("sliced")
    let whole = try ck.stored("contiguous")
    XCTAssertTrue(sliced.storage.base == whole.storage.base)
    XCTAssertEqual(sliced.offset - whole.offset, 6 * 4)
  }

  func testDeflatedRecordsAreInflated() throws {
    let ck = try TorchCheckpoint(path: Fixture.path("views_deflated.pt"))
    try assertMatchesExpected(ck, Fixture.tensors("views"))
  }

  func testZip64FieldsAreRead() throws {
    // Every size and offset in ZIP64 extra fields and a ZIP64 end record, as torch writes files > 4 GiB.
    let ck = try TorchCheckpoint(path: Fixture.path("views_zip64.pt"))
    try assertMatchesExpected(ck, Fixture.tensors("views"))
  }

  func testSelectMissingEntry() {
    assertModelIOError(["no entry 'module'", "contiguous"]) {
      _ = try TorchCheckpoint(path: Fixture.path("views.pt"), select: ["module"])
    }
  }

  /// The payloads would create these files if anything executed them.
  static let pwned = ["/tmp/cogflow_modelio_pwned_system", "/tmp/cogflow_modelio_pwned_eval"]

  func testMaliciousPicklesAreRefusedAndNothingRuns() throws {
    for p in Self.pwned { try? FileManager.default.removeItem(atPath: p) }
    assertModelIOError(["posix.system", "not on the allow-list", "nothing was run"]) {
      _ = try TorchCheckpoint(path: Fixture.path("bad/evil_system.pt"))
    }
    assertModelIOError(["builtins.eval", "not on the allow-list"]) {
      _ = try TorchCheckpoint(path: Fixture.path("bad/evil_eval.pt"))
    }
    assertModelIOError(["posix.system"]) { _ = try SATCheckpointLoader.load("bad/evil_system.pt") }
    for (file, name) in [
      ("evil_system.pkl", "posix.system"), ("evil_eval.pkl", "builtins.eval"),
      ("evil_eval_proto4.pkl", "builtins.eval"),
    ] {
      let data = try XCTUnwrap(FileManager.default.contents(atPath: Fixture.path("bad/" + file)))
      XCTAssertThrowsError(try data.withUnsafeBytes { try RestrictedUnpickler(path: file).load($0) }) { e in
        XCTAssertEqual(e as? ModelIOError, .refusedGlobal(path: file, name: name))
      }
    }
    for p in Self.pwned { XCTAssertFalse(FileManager.default.fileExists(atPath: p), "\(p) exists: code ran") }
  }

  func testNumpyRNGStateIsOpaqueAndOtherNumpyIsRefused() throws {
    // SAT's DeepSpeed save stores np.random.get_state(): read, never constructed.
    let ck = try TorchCheckpoint(path: Fixture.path("bad/numpy_array.pt"))
    XCTAssertTrue(ck.keys.isEmpty)
    guard case .dict(let top) = ck.root, case .tuple(let state) = top.first?.value else {
      return XCTFail("unexpected root")
    }
    XCTAssertEqual(state.count, 5)
    guard case .opaque(let name) = state[1] else { return XCTFail("array not opaque: \(state[1].typeName)") }
    XCTAssertTrue(name.hasSuffix("multiarray._reconstruct"), name)
    assertModelIOError(["numpy.load", "not on the allow-list"]) {
      _ = try TorchCheckpoint(path: Fixture.path("bad/numpy_load.pt"))
    }
  }

  func testDamagedArchives() {
    assertModelIOError(["truncated.pt", "truncated"]) {
      _ = try TorchCheckpoint(path: Fixture.path("bad/truncated.pt"))
    }
    assertModelIOError(["missing_storage.pt", "tensor '", "views/data/0' is missing"]) {
      _ = try TorchCheckpoint(path: Fixture.path("bad/missing_storage.pt"))
    }
    assertModelIOError(["legacy"]) { _ = try TorchCheckpoint(path: Fixture.path("bad/evil_system.pkl")) }
    do {
      let path = try Fixture.scratch(self) + "/nopkl.pt"
      try ZipWriter.write(path, ["archive/version": [0x33]])
      assertModelIOError(["no '<name>/data.pkl'"]) { _ = try TorchCheckpoint(path: path) }
    } catch { XCTFail("\(error)") }
  }

  /// A hand-made checkpoint: one tensor `w` viewing `size` floats at `offset` of a 4-float storage.
  func viewCheckpoint(size: Int, offset: Int, stride: Int = 1, extra: [String: [UInt8]] = [:]) throws -> String {
    var p = PickleBuilder()
    p.proto()
    p.emptyDict()
    p.string("w")
    p.global("torch._utils", "_rebuild_tensor_v2")
    p.mark()
    p.mark()
    p.string("storage")
    p.global("torch", "FloatStorage")
    p.string("0")
    p.string("cpu")
    p.int(4)
    p.tuple()
    p.binpersid()
    p.int(offset)
    p.mark()
    p.int(size)
    p.tuple()
    p.mark()
    p.int(stride)
    p.tuple()
    p.bool(false)
    p.global("collections", "OrderedDict")
    p.emptyTuple()
    p.reduce()
    p.tuple()
    p.reduce()
    p.setitem()
    p.stop()
    let path = try Fixture.scratch(self) + "/view.pt"
    let floats: [Float] = [1, 2, 3, 4]
    try ZipWriter.write(
      path,
      extra.merging(["archive/data.pkl": p.bytes, "archive/data/0": floats.withUnsafeBytes { Array($0) }]) { $1 })
    return path
  }

  func testViewOutsideItsStorageIsRefused() throws {
    let bad = try viewCheckpoint(size: 3, offset: 2)
    assertModelIOError(["tensor 'w'", "reaches element 4 of a 4-element storage"]) {
      _ = try TorchCheckpoint(path: bad)
    }
    let strided = try viewCheckpoint(size: 3, offset: 0, stride: 2)
    assertModelIOError(["tensor 'w'", "reaches element 4"]) { _ = try TorchCheckpoint(path: strided) }
    let ok = try TorchCheckpoint(path: try viewCheckpoint(size: 2, offset: 2))
    XCTAssertEqual(try ok.stored("w").doubles(), [3, 4])
    let every = try TorchCheckpoint(path: try viewCheckpoint(size: 2, offset: 1, stride: 2))
    XCTAssertEqual(try every.stored("w").doubles(), [2, 4])
    let little = try viewCheckpoint(size: 4, offset: 0, extra: ["archive/byteorder": Array("little".utf8)])
    XCTAssertEqual(try TorchCheckpoint(path: little).stored("w").doubles(), [1, 2, 3, 4])
    let big = try viewCheckpoint(size: 4, offset: 0, extra: ["archive/byteorder": Array("big".utf8)])
    assertModelIOError(["unsupported", "'big' byte order"]) { _ = try TorchCheckpoint(path: big) }
  }
}

/// Loads a fixture path as TorchCheckpoint with the SAT `module` selection (used for error checks).
enum SATCheckpointLoader {
  static func load(_ relative: String) throws -> TorchCheckpoint {
    try TorchCheckpoint(path: Fixture.path(relative), select: ["module"])
  }
}

/// A minimal stored-only zip writer for hand-made test archives.
enum ZipWriter {
  static func write(_ path: String, _ entries: [String: [UInt8]]) throws {
    var out: [UInt8] = []
    var central: [UInt8] = []
    func le16(_ v: Int, _ a: inout [UInt8]) { a += [UInt8(v & 0xff), UInt8(v >> 8 & 0xff)] }
    func le32(_ v: Int, _ a: inout [UInt8]) {
      le16(v & 0xffff, &a)
      le16(v >> 16 & 0xffff, &a)
    }
    for name in entries.keys.sorted() {
      let data = entries[name]!
      let crc = data.withUnsafeBytes { Int(ZipArchive.crc32($0)) }
      let offset = out.count
      le32(0x0403_4b50, &out)
      le16(20, &out)
      le16(0, &out)
      le16(0, &out)
      le32(0, &out)
      le32(crc, &out)
      le32(data.count, &out)
      le32(data.count, &out)
      le16(name.utf8.count, &out)
      le16(0, &out)
      out += Array(name.utf8) + data
      le32(0x0201_4b50, &central)
      le16(20, &central)
      le16(20, &central)
      le16(0, &central)
      le16(0, &central)
      le32(0, &central)
      le32(crc, &central)
      le32(data.count, &central)
      le32(data.count, &central)
      le16(name.utf8.count, &central)
      le16(0, &central)
      le16(0, &central)
      le16(0, &central)
      le16(0, &central)
      le32(0, &central)
      le32(offset, &central)
      central += Array(name.utf8)
    }
    let cdOffset = out.count
    out += central
    le32(0x0605_4b50, &out)
    le16(0, &out)
    le16(0, &out)
    le16(entries.count, &out)
    le16(entries.count, &out)
    le32(central.count, &out)
    le32(cdOffset, &out)
    le16(0, &out)
    try Data(out).write(to: URL(fileURLWithPath: path))
  }
}
