import Foundation
import XCTest

/// Hostile input to the `cogflow` binary (issue 10), each in a child process: a clean exit status (no signal),
/// the error's wording and position, a time bound (about ×10 the expected time on a loaded machine) and a
/// peak-memory bound. Peak memory is the child's own VmHWM from /proc/<pid>/status, sampled until it exits
/// (ru_maxrss after posix_spawn can report the parent's peak instead).
final class HardeningCLITests: XCTestCase {
  struct Outcome {
    var status: Int32
    var signaled: Bool
    var stdout: String
    var stderr: String
    var seconds: Double
    /// Highest VmHWM seen, in MiB (nil if the child ended before the first sample).
    var peakMiB: Double?
  }

  override func setUp() {
    XCTAssertTrue(FileManager.default.isExecutableFile(atPath: CLI.binary), "build cogflow first: \(CLI.binary)")
  }

  func run(_ args: [String], in scratch: Scratch, env extra: [String: String] = [:]) throws -> Outcome {
    let env = CLI.environment(cache: scratch.cache, extra: extra)
    let base = scratch.path + "/.out-\(UUID().uuidString)"
    let started = Date()
    let process = try CLI.start(args, env: env, cwd: scratch.path, outputs: base)
    var peak: Double?
    while process.isRunning {
      if let text = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8),
        let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
        let kb = Double(line.split(separator: " ").dropFirst().first ?? "")
      {
        peak = max(peak ?? 0, kb / 1024)
      }
      usleep(2000)
    }
    process.waitUntilExit()
    return Outcome(
      status: process.terminationStatus, signaled: process.terminationReason == .uncaughtSignal,
      stdout: (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? "",
      stderr: (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? "",
      seconds: Date().timeIntervalSince(started), peakMiB: peak)
  }

  func check(
    _ out: Outcome, status: Int32, contains wording: [String], seconds: Double, peakMiB: Double,
    file: StaticString = #filePath, line: UInt = #line
  ) {
    XCTAssertFalse(out.signaled, "ended by a signal: \(out.status)", file: file, line: line)
    XCTAssertEqual(out.status, status, String(out.stderr.prefix(500)), file: file, line: line)
    for text in wording {
      XCTAssertTrue(
        out.stderr.contains(text), "missing '\(text)' in: \(out.stderr.prefix(500))", file: file, line: line)
    }
    XCTAssertLessThan(out.seconds, seconds, file: file, line: line)
    if let peak = out.peakMiB { XCTAssertLessThan(peak, peakMiB, file: file, line: line) }
    XCTAssertLessThan(out.stderr.utf8.count, 20_000, "stderr is bounded", file: file, line: line)
  }

  func testDeepNestingBillionLaughsAndMatrixExit2Cleanly() throws {
    let scratch = Scratch()
    let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
    scratch.write("deep.yaml", "cogflow: 1\nnodes:\n  a:\n    type: toy.add\n    with: {value: \(deep)}\n")
    check(
      try run(["validate", "deep.yaml"], in: scratch), status: 2,
      contains: ["deep.yaml:5:", "nesting deeper than 200 levels"], seconds: 30, peakMiB: 400)

    var laughs = "cogflow: 1\nparams:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    for i in 1...9 {
      laughs += "  a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n"
    }
    laughs += "nodes: {}\n"
    scratch.write("laughs.yaml", laughs)
    check(
      try run(["validate", "laughs.yaml"], in: scratch), status: 2,
      contains: ["laughs.yaml:8:", "more than 1000000 YAML nodes"], seconds: 10, peakMiB: 400)

    var matrix = "cogflow: 1\nmatrix:\n"
    for v in 0..<9 { matrix += "  v\(v): [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n" }
    matrix +=
      "nodes:\n  a:\n    type: toy.concat\n    in: {text: {value: \"" + (0..<9).map { "${v\($0)}" }.joined()
      + "\"}}\n"
    scratch.write("matrix.yaml", matrix)
    check(
      try run(["plan", "matrix.yaml", "--max-nodes", "50"], in: scratch), status: 2,
      contains: ["expands to 1000000000 node instances, more than the limit of 50"], seconds: 10, peakMiB: 400)
  }

  func testLargeInputsAreLinear() throws {
    let scratch = Scratch()
    scratch.write(
      "flat.yaml",
      "cogflow: 1\nparams:\n  big: [" + (0..<100_000).map(String.init).joined(separator: ", ") + "]\nnodes: {}\n")
    let flat = try run(["validate", "flat.yaml"], in: scratch)
    check(flat, status: 0, contains: [], seconds: 20, peakMiB: 600)

    var cycle = "cogflow: 1\nnodes:\n"
    for i in 0..<50_000 { cycle += "  c\(i): {type: toy.add, in: {a: c\((i + 1) % 50_000).out}}\n" }
    scratch.write("cycle.yaml", cycle)
    check(
      try run(["validate", "cycle.yaml"], in: scratch), status: 2, contains: ["cycle.yaml:3:3: error: cycle: c0 -> "],
      seconds: 60, peakMiB: 1_000)

    let name = String(repeating: "z", count: 10_000_000)
    scratch.write("name.yaml", "cogflow: 1\nnodes:\n  a: {type: \(name)}\n")
    let long = try run(["validate", "name.yaml"], in: scratch)
    check(
      long, status: 2, contains: ["name.yaml:3:13: error: node 'a': unknown node type", "more characters)"],
      seconds: 30, peakMiB: 600)
  }

  func testFilesThatAreNotRegularFailAtOnce() throws {
    let scratch = Scratch()
    XCTAssertEqual(mkfifo(scratch.path + "/pipe", 0o600), 0)
    scratch.write("w.yaml", "cogflow: 1\nmodels: {m: pipe}\nnodes:\n  a: {type: toy.model, with: {model: m}}\n")
    check(
      try run(["run", "w.yaml"], in: scratch), status: 2,
      contains: ["w.yaml:2:13: error: model 'm': 'pipe' is a FIFO (named pipe)"], seconds: 20, peakMiB: 400)
    check(
      try run(["validate", "pipe"], in: scratch), status: 2,
      contains: ["'pipe' is a FIFO (named pipe), not a regular file"],
      seconds: 20, peakMiB: 400)
    check(
      try run(["validate", "/dev/zero"], in: scratch), status: 2,
      contains: ["is a character device, not a regular file"],
      seconds: 20, peakMiB: 400)
    check(
      try run(["validate", scratch.path], in: scratch), status: 2, contains: ["is a directory, not a regular file"],
      seconds: 20, peakMiB: 400)
    check(
      try run(["inspect", "pipe"], in: scratch), status: 1, contains: ["FIFO (named pipe), not a regular file"],
      seconds: 20, peakMiB: 400)
    scratch.write("empty.yaml", "")
    check(
      try run(["validate", "empty.yaml"], in: scratch), status: 2,
      contains: ["empty.yaml:1:1: error: the file is empty"],
      seconds: 20, peakMiB: 400)
    scratch.write("file-not-folder", "x")
    check(
      try run(["cache", "stats", "--cache", scratch.path + "/file-not-folder"], in: scratch), status: 1,
      contains: ["is a regular file, not a folder"], seconds: 20, peakMiB: 400)
  }

  func testSizesAndBadArgumentsExit2() throws {
    let scratch = Scratch()
    for size in ["1e30G", "nanK", "infK", "-5M", "99999999999E", "1.5.5G", "0x10M", "5Q", "K"] {
      let out = try run(["cache", "gc", "--max-size=\(size)", "--save"], in: scratch)
      check(out, status: 2, contains: ["is not a size from 0 to 4 EiB"], seconds: 20, peakMiB: 400)
    }
    check(
      try run(["cache", "gc", "--max-size", ""], in: scratch), status: 2, contains: ["--max-size"], seconds: 20,
      peakMiB: 400)
    let ok = try run(["cache", "gc", "--max-size", "1.5K"], in: scratch)
    check(ok, status: 0, contains: [], seconds: 20, peakMiB: 400)
    check(
      try run(["validate"], in: scratch), status: 2, contains: ["Missing expected argument"], seconds: 20, peakMiB: 400)
    check(
      try run(["cache", "stats", "--no-such-flag"], in: scratch), status: 2, contains: ["Unknown option"], seconds: 20,
      peakMiB: 400)
  }

  func testNodeErrorsAreEscapedAndPlanSaysAtMost() throws {
    let scratch = Scratch()
    scratch.write(
      "f.yaml",
      "cogflow: 1\nnodes:\n  a: {type: toy.fail, with: {message: \"line1\\nline2\\u001b[31m\"}}\n"
        + "  b: {type: toy.add, in: {a: a.out}}\n  c: {type: toy.add}\n  d: {type: toy.add, in: {a: c.out}}\n")
    let out = try run(["run", "f.yaml", "--events", scratch.path + "/e.jsonl"], in: scratch)
    check(out, status: 1, contains: ["line1\\nline2\\u{1b}[31m"], seconds: 30, peakMiB: 400)
    XCTAssertFalse(out.stderr.contains("\u{1b}"), out.stderr)
    for event in jsonObjects(scratch.read("e.jsonl")) where (event["event"] as? String)?.hasPrefix("node-") == true {
      XCTAssertTrue(event.keys.contains("key"), "\(event)")
    }
    let plan = try run(["plan", "f.yaml", "--cache", scratch.path + "/fresh"], in: scratch)
    XCTAssertTrue(plan.stdout.hasSuffix("0 cached, at most 4 to run\n"), plan.stdout)
  }
}
