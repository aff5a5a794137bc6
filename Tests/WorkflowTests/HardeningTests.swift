import Foundation
import XCTest

@testable import Workflow

/// Hostile and oversized workflow input, at library level (issue 10). Inputs are generated here; the
/// child-process versions with exit status, time and memory bounds are in Tests/CLITests/HardeningCLITests.swift.
final class HardeningTests: XCTestCase {
  func messages(_ path: String, _ options: ResolveOptions = ResolveOptions()) -> String {
    diagnostics(path, options).map(\.description).joined(separator: "\n")
  }

  func yamlError(_ text: String) -> YAMLError? {
    do {
      _ = try YAMLParser.parse(text, file: "t.yaml")
      return nil
    } catch let error as YAMLError {
      return error
    } catch {
      XCTFail("unexpected \(error)")
      return nil
    }
  }

  // Class 1: nesting is bounded (flow list, flow map, inside with:), and aliases count with their depth.
  func testDeepNestingIsABoundedError() throws {
    let depth = 100_000
    for text in [
      String(repeating: "[", count: depth) + String(repeating: "]", count: depth),
      String(repeating: "{a: ", count: depth) + "1" + String(repeating: "}", count: depth),
      "cogflow: 1\nnodes:\n  a:\n    type: toy.add\n    with: { value: " + String(repeating: "[", count: depth)
        + String(repeating: "]", count: depth) + " }\n",
    ] {
      let error = try XCTUnwrap(yamlError(text))
      XCTAssertTrue(error.message.contains("nesting deeper than 200 levels"), error.message)
      XCTAssertTrue(error.message.contains("COGFLOW_YAML_MAX_DEPTH"), error.message)
    }
    // 200 levels are fine; an alias of a 150-deep list inside 100 levels is not.
    XCTAssertNil(yamlError(String(repeating: "[", count: 199) + String(repeating: "]", count: 199)))
    let deep = String(repeating: "[", count: 150) + String(repeating: "]", count: 150)
    let aliased =
      "a: &x " + deep + "\nb: " + String(repeating: "[", count: 100) + "*x" + String(repeating: "]", count: 100)
    XCTAssertNotNil(yamlError(aliased))
  }

  // Class 2: billion laughs is counted as it expands.
  func testAliasExpansionIsCounted() throws {
    var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    for i in 1...9 {
      text += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n"
    }
    text += "cogflow: 1\n"
    let started = Date()
    let error = try XCTUnwrap(yamlError(text))
    XCTAssertLessThan(Date().timeIntervalSince(started), 5)
    XCTAssertTrue(error.message.contains("more than 1000000 YAML nodes"), error.message)
    XCTAssertEqual(error.location.line, 6)  // a5 = 10^6 scalars plus its lists, past the limit
  }

  // Class 7: duplicate keys everywhere, with both positions; a second document.
  func testDuplicateKeysAndSecondDocument() throws {
    let error = try XCTUnwrap(yamlError("a:\n  type: x\n  type: y\n"))
    XCTAssertEqual(error.description, "t.yaml:3:3: error: duplicate key 'type' (first at t.yaml:2:3)")
    // In a workflow, every duplicate is reported with the other problems, with both positions.
    let dir = TempDir()
    let path = dir.write(
      "d.yaml",
      "cogflow: 1\nparams: {p: 1, p: 2, q: {type: int, min: 1, min: 2}}\nmatrix: {s: [1], s: [2]}\n"
        + "models: {m: a, m: b}\nnodes:\n  a: {type: toy.add, type: toy.mul}\n  b: {use: x, use: y}\n")
    let found = diagnostics(path).map(\.description).filter { $0.contains("duplicate key") }
    XCTAssertEqual(
      found.map { $0.replacingOccurrences(of: path, with: "d.yaml") },
      [
        "d.yaml:2:16: error: duplicate key 'p' (first at d.yaml:2:10)",
        "d.yaml:2:45: error: duplicate key 'min' (first at d.yaml:2:37)",
        "d.yaml:3:18: error: duplicate key 's' (first at d.yaml:3:10)",
        "d.yaml:4:16: error: duplicate key 'm' (first at d.yaml:4:10)",
        "d.yaml:6:22: error: duplicate key 'type' (first at d.yaml:6:7)",
        "d.yaml:7:15: error: duplicate key 'use' (first at d.yaml:7:7)",
      ])
    let second = try XCTUnwrap(yamlError("a: 1\n---\nb: 2\n"))
    XCTAssertEqual(second.location.line, 2)
    XCTAssertTrue(second.message.contains("a second YAML document"), second.message)
  }

  // Class 7: YAML 1.2 core scalars.
  func testCoreSchemaScalars() {
    XCTAssertEqual(Value.fromScalar("0x10", quoted: false), .int(16))
    XCTAssertEqual(Value.fromScalar("0o17", quoted: false), .int(15))
    XCTAssertEqual(Value.fromScalar("+5", quoted: false), .int(5))
    XCTAssertEqual(Value.fromScalar("1e3", quoted: false), .float(1000))
    XCTAssertEqual(Value.fromScalar(".5", quoted: false), .float(0.5))
    XCTAssertEqual(Value.fromScalar("-.inf", quoted: false), .float(-.infinity))
    for text in ["nan", "inf", "infinity", "0x", "1_000", "0x1p3", "1e", "--1"] {
      XCTAssertEqual(Value.fromScalar(text, quoted: false), .string(text), text)
    }
  }

  // Class 3: linear parsing; messages are capped and escaped; did-you-mean is bounded.
  func testLargeFlatListAndLongNamesAreFast() throws {
    let dir = TempDir()
    let list = (0..<100_000).map(String.init).joined(separator: ", ")
    var started = Date()
    let root = try YAMLParser.parse("v: [\(list)]", file: "t.yaml")
    XCTAssertEqual(root["v"]?.items?.count, 100_000)
    XCTAssertLessThan(Date().timeIntervalSince(started), 10, "100k ints (76 s before the fix)")

    let name = String(repeating: "q", count: 10_000_000)
    let path = dir.write(
      "long.yaml",
      "cogflow: 1\nnodes:\n  a:\n    type: \(name)\n  b:\n    type: toy.add\n    with: {value: \"\(name)\"}\n")
    started = Date()
    let all = diagnostics(path)
    XCTAssertLessThan(Date().timeIntervalSince(started), 20, "10 MB unknown name (18 s before)")
    XCTAssertEqual(all.count, 2)
    for d in all {
      XCTAssertLessThan(d.message.count, 2_100, String(d.message.prefix(200)))
      XCTAssertTrue(d.message.contains("more characters)"), String(d.message.prefix(200)))
    }
    let escaped = Diagnostic("bad\u{1b}[31m\nline\u{7}", at: nil).message
    XCTAssertEqual(escaped, "bad\\u{1b}[31m\\nline\\u{7}")
  }

  // Class 1: a long chain written consumer-first, and a long cycle.
  func testLongChainAndCycleValidateWithoutRecursion() throws {
    let dir = TempDir()
    let n = 50_000
    var chain = "cogflow: 1\nnodes:\n"
    for i in stride(from: n - 1, through: 1, by: -1) { chain += "  n\(i): {type: toy.add, in: {a: n\(i - 1).out}}\n" }
    chain += "  n0: {type: toy.add}\n"
    var started = Date()
    let wf = try resolve(dir.write("chain.yaml", chain))
    XCTAssertEqual(wf.nodes.count, n)
    XCTAssertEqual(wf.nodes.first?.id, "n0")
    XCTAssertLessThan(Date().timeIntervalSince(started), 60, "50k chain (56 s before)")

    var cycle = "cogflow: 1\nnodes:\n"
    for i in 0..<n { cycle += "  c\(i): {type: toy.add, in: {a: c\((i + 1) % n).out}}\n" }
    started = Date()
    let found = diagnostics(dir.write("cycle.yaml", cycle))
    XCTAssertLessThan(Date().timeIntervalSince(started), 60)
    XCTAssertEqual(found.count, 1)
    XCTAssertTrue(found[0].message.hasPrefix("cycle: c0 -> c49999 -> c49998"), String(found[0].message.prefix(100)))
  }

  // Class 1 (engine): a failure at the head of a long chain skips it iteratively, each skip with a key field.
  func testFailureSkipsLongChainIteratively() throws {
    let dir = TempDir()
    var text = "cogflow: 1\nnodes:\n  n0: {type: toy.fail}\n"
    for i in 1..<20_000 { text += "  n\(i): {type: toy.add, in: {a: n\(i - 1).out}}\n" }
    let wf = try resolve(dir.write("chain.yaml", text))
    let log = EventLog()
    let result = runEngine(wf, cache: nil, log: log)
    XCTAssertEqual(result.count(.skipped), 19_999)
    XCTAssertEqual(result.count(.failed), 1)
    let skipped = try XCTUnwrap(log.events.first { $0.kind == .nodeSkipped })
    XCTAssertTrue(skipped.jsonLine.contains("\"key\":null"), skipped.jsonLine)
  }

  // Class 2: expansion is counted before any instance is built; list values must be distinct.
  func testMatrixExpansionIsBounded() throws {
    let dir = TempDir()
    var text = "cogflow: 1\nmatrix:\n"
    for v in 0..<9 { text += "  v\(v): [" + (0..<10).map(String.init).joined(separator: ", ") + "]\n" }
    text +=
      "nodes:\n  a:\n    type: toy.concat\n    in: {text: {value: \""
      + (0..<9).map { "${v\($0)}" }.joined() + "\"}}\n"
    let path = dir.write("matrix.yaml", text)
    let started = Date()
    XCTAssertEqual(
      messages(path),
      "error: the workflow expands to 1000000000 node instances, more than the limit of 100000 (raise it with"
        + " --max-nodes or COGFLOW_MAX_NODES)")
    XCTAssertLessThan(Date().timeIntervalSince(started), 10)
    XCTAssertEqual(messages(path, ResolveOptions(maxNodes: 999_999_999)).isEmpty, false)

    let twice = dir.write(
      "twice.yaml", "cogflow: 1\nmatrix: {s: [1, 2, 1]}\nnodes:\n  a: {type: toy.add, with: {value: $s}}\n")
    XCTAssertEqual(
      messages(twice),
      "twice.yaml:2:13: error: matrix 's' lists the value 1 more than once".replacingOccurrences(
        of: "twice.yaml", with: twice))
  }

  // Class 2: an include diamond 20 deep reads each file once.
  func testIncludeDiamondReadsEachFileOnce() throws {
    let dir = TempDir()
    for i in 0..<20 { dir.write("i\(i).yaml", "include: [i\(i + 1).yaml, i\(i + 1).yaml]\nparams: {p\(i): 1}\n") }
    dir.write("i20.yaml", "params: {last: 1}\n")
    let root = dir.write(
      "root.yaml", "cogflow: 1\ninclude: i0.yaml\nnodes:\n  a: {type: toy.add, with: {value: $last}}\n")
    let started = Date()
    let wf = try resolve(root)
    XCTAssertEqual(wf.params.count, 21)
    XCTAssertLessThan(Date().timeIntervalSince(started), 10)
    // A chain of 100 distinct includes stops at the depth limit with one error.
    for i in 0..<100 { dir.write("c\(i).yaml", "include: c\(i + 1).yaml\nparams: {c\(i): 1}\n") }
    dir.write("c100.yaml", "params: {end: 1}\n")
    let chain = dir.write("chain.yaml", "cogflow: 1\ninclude: c0.yaml\nnodes: {}\n")
    XCTAssertEqual(
      diagnostics(chain).map(\.message), ["includes nested deeper than 64 files; 'c63.yaml' is not read"])
    // A file that is not a workflow: nothing of its content is echoed.
    dir.write("secret.yaml", "password: hunter2\n")
    let leak = dir.write("leak.yaml", "cogflow: 1\ninclude: secret.yaml\nnodes: {}\n")
    let text = messages(leak)
    XCTAssertTrue(text.contains("included file is not a workflow file"), text)
    XCTAssertFalse(text.contains("password") || text.contains("hunter2"), text)
  }

  // Class 7: inputs that used to pass.
  func testInputsThatMustFail() throws {
    let dir = TempDir()
    let unclosed = dir.write(
      "unclosed.yaml", "cogflow: 1\nparams: {p: 1}\nnodes:\n  a: {type: toy.concat, in: {text: {value: \"x ${p\"}}}\n")
    XCTAssertTrue(messages(unclosed).contains("'${' is not closed by '}'"), messages(unclosed))
    let bounds = dir.write("bounds.yaml", "cogflow: 1\nparams:\n  p: {type: float, default: 1, min: abc}\nnodes: {}\n")
    XCTAssertEqual(messages(bounds), "\(bounds):3:37: error: 'min' of parameter 'p' must be a number, found 'abc'")
    let nan = dir.write(
      "nan.yaml", "cogflow: 1\nparams:\n  p: {type: float, default: .nan, min: 0, max: 1}\nnodes: {}\n")
    XCTAssertTrue(messages(nan).contains("NaN cannot be checked against the bounds 0 … 1"), messages(nan))
    let matrix = dir.write(
      "m.yaml", "cogflow: 1\nmatrix: {s: [1, 2]}\nnodes:\n  a: {type: toy.add, with: {value: $s}}\n")
    XCTAssertEqual(
      messages(matrix, ResolveOptions(overrides: ["s=3"])), "error: --set s=3: not one of the matrix values [1,2]")
    XCTAssertEqual(try resolve(matrix, ResolveOptions(overrides: ["s=2"])).nodes.map(\.id), ["a[s=2]"])
    let empty = dir.write("empty.yaml", "")
    XCTAssertTrue(messages(empty).contains("the file is empty"), messages(empty))
  }

  // Class 4: only regular files for models and file parameters, checked without opening.
  func testModelAndFileParamsMustBeRegularFiles() throws {
    let dir = TempDir()
    let fifo = dir.path("pipe")
    XCTAssertEqual(mkfifo(fifo, 0o600), 0)
    let text =
      "cogflow: 1\nmodels: {m: \(fifo), z: /dev/zero}\nnodes:\n  a: {type: toy.model, with: {model: m}}\n"
      + "  b: {type: toy.model, with: {model: z}}\n"
    let all = messages(dir.write("w.yaml", text))
    XCTAssertTrue(all.contains("is a FIFO (named pipe); a model is a regular file or a folder"), all)
    XCTAssertTrue(all.contains("'/dev/zero' is a character device"), all)
    // Hashing checks for cancellation between chunks.
    let big = dir.path("big.bin")
    XCTAssertTrue(FileManager.default.createFile(atPath: big, contents: Data(count: 9 << 20)))
    let token = CancellationToken()
    token.cancel()
    XCTAssertThrowsError(try DiskCache.hashRegularFile(big, cancellation: token)) { error in
      XCTAssertTrue(error is CancelledError, "\(error)")
    }
    XCTAssertEqual(try DiskCache.hashRegularFile(big), try SHA256.hashFile(atPath: big))
    XCTAssertThrowsError(try DiskCache.hashRegularFile("/dev/zero")) { error in
      XCTAssertTrue("\(error)".contains("character device, not a regular file"), "\(error)")
    }
  }

  // Class 8: toy overflow fails the node; verify and gc housekeeping.
  func testToyOverflowFailsTheNodeAndCacheHousekeeping() throws {
    let dir = TempDir()
    let path = dir.write(
      "o.yaml",
      "cogflow: 1\nnodes:\n  big: {type: toy.add, with: {value: 1000000}}\n"
        + "  m: {type: toy.mul, in: {a: big.out}, with: {factor: 9223372036854775807}}\n"
        + "  s: {type: toy.slow, with: {steps: 1, ms: 9223372036854775807}}\n  ok: {type: toy.add}\n")
    let cache = try DiskCache(root: dir.url.appendingPathComponent("cache"))
    let result = runEngine(try resolve(path), cache: cache)
    XCTAssertEqual(result.outcomes["m"], .failed)
    XCTAssertEqual(result.outcomes["s"], .failed)
    XCTAssertEqual(result.outcomes["ok"], .ran)
    XCTAssertTrue(result.errors.joined().contains("integer overflow in a × factor"), "\(result.errors)")
    // The finished nodes' entries were stored.
    XCTAssertNotNil(cache.lookup(try XCTUnwrap(result.keys["ok"])))

    try cache.putObject(Data("orphan".utf8), digest: SHA256.hash(Data("orphan".utf8)))
    let report = cache.verify()
    XCTAssertEqual(report.unreferencedRemoved, 1)
    XCTAssertTrue(report.problems.isEmpty, "\(report.problems)")
    var waited = false
    try cache.lockKey("k", cancellation: CancellationToken(), waited: &waited).release()
    let gc = cache.collectGarbage(maxBytes: 0)
    XCTAssertEqual(cache.listFiles("locks"), [])
    XCTAssertEqual(cache.listFiles("index"), [])
    XCTAssertEqual(gc.bytesKept, 0)
  }
}
