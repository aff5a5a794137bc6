import Foundation
import XCTest

@testable import ModelIO

/// Writes pickle opcodes by hand, for inputs no Python pickler would produce.
struct PickleBuilder {
  var bytes: [UInt8] = []
  mutating func op(_ b: UInt8) { bytes.append(b) }
  mutating func proto(_ v: UInt8 = 2) { bytes += [0x80, v] }
  mutating func stop() { op(0x2E) }
  mutating func mark() { op(0x28) }
  mutating func tuple() { op(0x74) }
  mutating func emptyTuple() { op(0x29) }
  mutating func emptyDict() { op(0x7D) }
  mutating func emptyList() { op(0x5D) }
  mutating func append() { op(0x61) }
  mutating func setitem() { op(0x73) }
  mutating func reduce() { op(0x52) }
  mutating func binpersid() { op(0x51) }
  mutating func bool(_ v: Bool) { op(v ? 0x88 : 0x89) }
  mutating func put(_ i: UInt8) { bytes += [0x71, i] }
  mutating func get(_ i: UInt8) { bytes += [0x68, i] }
  mutating func int(_ v: Int) {
    if (0..<256).contains(v) {
      bytes += [0x4B, UInt8(v)]
    } else {
      op(0x4A)
      for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) }
    }
  }
  mutating func string(_ s: String) {
    op(0x58)
    let u = Array(s.utf8)
    for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: u.count >> (8 * i))) }
    bytes += u
  }
  mutating func global(_ module: String, _ name: String) { bytes += [0x63] + Array("\(module)\n\(name)\n".utf8) }
}

final class PickleTests: XCTestCase {
  func load(_ b: PickleBuilder) throws -> PickleValue {
    try b.bytes.withUnsafeBytes { try RestrictedUnpickler(path: "p").load($0) }
  }

  func testScalarsContainersAndMemo() throws {
    var p = PickleBuilder()
    p.proto()
    p.emptyList()
    p.put(0)
    p.int(-5)
    p.append()
    p.string("é")
    p.append()
    p.bytes += [0x47] + [0x40, 0x09, 0x21, 0xFB, 0x54, 0x44, 0x2D, 0x18]  // BINFLOAT pi, big-endian
    p.append()
    p.bytes += [0x8A, 0x02, 0xFF, 0x7F]  // LONG1 32767
    p.append()
    p.bytes += [0x8A, 0x01, 0xFF]  // LONG1 -1
    p.append()
    p.bytes += [0x8A, 0x09] + [UInt8](repeating: 0, count: 8) + [1]  // LONG1 2^64
    p.append()
    p.get(0)  // the list itself would be a cycle: use a fresh dict referencing a memoized string instead
    p.bytes.removeLast(2)
    p.bytes += [0x4E]  // None
    p.append()
    p.stop()
    guard case .list(let items) = try load(p) else { return XCTFail("not a list") }
    XCTAssertEqual(items.count, 7)
    if case .int(let v) = items[0] { XCTAssertEqual(v, -5) } else { XCTFail() }
    if case .string(let s) = items[1] { XCTAssertEqual(s, "é") } else { XCTFail() }
    if case .float(let d) = items[2] { XCTAssertEqual(d, Double.pi) } else { XCTFail() }
    if case .int(let v) = items[3] { XCTAssertEqual(v, 32767) } else { XCTFail() }
    if case .int(let v) = items[4] { XCTAssertEqual(v, -1) } else { XCTFail() }
    if case .bigInt(let b) = items[5] { XCTAssertEqual(b.count, 9) } else { XCTFail() }
  }

  func testMemoSharesMutableContainers() throws {
    // d = {}; memo[0] = d; d["a"] = 1 after memoizing; result = [d, memo[0]] sees the item twice.
    var p = PickleBuilder()
    p.proto()
    p.emptyList()
    p.emptyDict()
    p.put(0)
    p.string("a")
    p.int(1)
    p.setitem()
    p.append()
    p.get(0)
    p.append()
    p.stop()
    guard case .list(let items) = try load(p), items.count == 2, case .dict(let second) = items[1] else {
      return XCTFail("unexpected shape")
    }
    XCTAssertEqual(second.count, 1)
  }

  func testCyclesDepthAndTruncationAreErrors() throws {
    var cyc = PickleBuilder()
    cyc.proto()
    cyc.emptyList()
    cyc.put(0)
    cyc.get(0)
    cyc.append()
    cyc.stop()
    assertModelIOError(["contains itself"]) { _ = try load(cyc) }

    var deep = PickleBuilder()
    deep.proto()
    for _ in 0..<200_000 { deep.emptyList() }
    for _ in 0..<199_999 { deep.append() }
    deep.stop()
    assertModelIOError(["deeper than"]) { _ = try load(deep) }

    var tuples = PickleBuilder()
    tuples.proto()
    tuples.emptyTuple()
    for _ in 0..<100_000 { tuples.op(0x85) }  // TUPLE1 wraps the top again and again
    tuples.stop()
    assertModelIOError(["nested deeper than 1000"]) { _ = try load(tuples) }

    var short = PickleBuilder()
    short.proto()
    short.bytes += [0x58, 0xFF, 0xFF, 0xFF, 0x7F, 0x41]  // a 2 GiB string with one byte present
    assertModelIOError(["exceeds the remaining"]) { _ = try load(short) }

    var empty = PickleBuilder()
    empty.proto()
    assertModelIOError(["ends early"]) { _ = try load(empty) }

    var underflow = PickleBuilder()
    underflow.proto()
    underflow.mark()
    underflow.append()
    assertModelIOError(["stack underflow"]) { _ = try load(underflow) }

    var unknownMemo = PickleBuilder()
    unknownMemo.proto()
    unknownMemo.get(9)
    assertModelIOError(["memo entry 9"]) { _ = try load(unknownMemo) }
  }

  func testObjectConstructionOpcodesAreRefused() throws {
    var inst = PickleBuilder()
    inst.proto()
    inst.mark()
    inst.bytes += [0x69] + Array("os\nsystem\n".utf8)  // INST
    XCTAssertThrowsError(try load(inst)) {
      XCTAssertEqual($0 as? ModelIOError, .refusedGlobal(path: "p", name: "os.system"))
    }
    var stackGlobal = PickleBuilder()
    stackGlobal.proto(4)
    stackGlobal.string("subprocess")
    stackGlobal.string("Popen")
    stackGlobal.op(0x93)
    XCTAssertThrowsError(try load(stackGlobal)) {
      XCTAssertEqual($0 as? ModelIOError, .refusedGlobal(path: "p", name: "subprocess.Popen"))
    }
    var py2 = PickleBuilder()
    py2.proto()
    py2.global("__builtin__", "getattr")
    XCTAssertThrowsError(try load(py2)) {
      XCTAssertEqual($0 as? ModelIOError, .refusedGlobal(path: "p", name: "builtins.getattr"))
    }
    for op: UInt8 in [0x6F, 0x92, 0x82] {
      var p = PickleBuilder()
      p.proto()
      p.op(op)
      XCTAssertThrowsError(try load(p))
    }
  }

  func testAllowedButUnsupportedTensorKinds() throws {
    var p = PickleBuilder()
    p.proto()
    p.global("torch._utils", "_rebuild_qtensor")
    p.emptyTuple()
    p.reduce()
    p.stop()
    assertModelIOError(["unsupported", "_rebuild_qtensor"]) { _ = try load(p) }
  }

  func testBytesThroughCodecsEncode() throws {
    // Protocol 2 pickles Python 3 bytes as _codecs.encode("\u{ff}A", "latin1").
    var p = PickleBuilder()
    p.proto()
    p.global("_codecs", "encode")
    p.string("\u{ff}A")
    p.string("latin1")
    p.bytes.append(0x86)
    p.reduce()
    p.stop()
    guard case .bytes(let b) = try load(p) else { return XCTFail("not bytes") }
    XCTAssertEqual(b, [0xFF, 0x41])
  }
}
