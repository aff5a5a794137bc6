import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Debug node types for tests, examples and `cogflow bench-engine`: integer arithmetic, a slow node with
/// progress, a failing node, a node that counts its runs in a file, a node that reads a model file and one
/// that writes a file. The CLI registers them only when `COGFLOW_TOY_NODES=1` (or with `--toy-nodes`);
/// their names all start with `toy.`. Values travel as decimal text with type tag "int".
public enum ToyNodes {
  static func intValue(_ artifact: Artifact?, default value: Int = 0) throws -> Int {
    guard let artifact else { return value }
    guard let i = Int(artifact.text) else {
      throw WorkflowError.usage("expected an int artifact, found '\(artifact.text.prefix(40))'")
    }
    return i
  }

  static func int(_ i: Int) -> Artifact { Artifact(text: String(i), type: "int") }

  /// Checked arithmetic: an overflow fails the node with a message instead of trapping the process.
  static func checked(_ op: String, _ r: (partialValue: Int, overflow: Bool)) throws -> Int {
    if r.overflow { throw WorkflowError.usage("integer overflow in \(op)") }
    return r.partialValue
  }

  /// Sleeps `ms` milliseconds (at most one day per call), in one-second slices so huge values cannot overflow.
  static func sleep(ms: Int) throws {
    guard ms >= 0, ms <= 86_400_000 else {
      throw WorkflowError.usage("ms \(ms) is outside 0…86400000 (one day)")
    }
    var left = ms
    while left > 0 {
      let slice = min(left, 1000)
      usleep(UInt32(slice) * 1000)
      left -= slice
    }
  }

  /// Appends one line to `path` with O_APPEND (atomic for short lines, so several processes can share it).
  static func appendLine(_ line: String, to path: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    guard fd >= 0 else { throw WorkflowError.io(path: path, message: "cannot open: \(errnoText())") }
    defer { close(fd) }
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
  }

  public static let add = ClosureNodeType(
    NodeTypeSpec(
      name: "toy.add", version: 1, doc: "a + b + value",
      inputs: [PortSpec("a", "int", optional: true), PortSpec("b", "int", optional: true)],
      outputs: [PortSpec("out", "int")],
      params: [ParamSpec("value", .int, default: .int(0), min: -1_000_000, max: 1_000_000, doc: "a constant added")])
  ) { inputs, params, _ in
    let ab = try checked("a + b", intValue(inputs["a"]).addingReportingOverflow(intValue(inputs["b"])))
    return ["out": int(try checked("a + b + value", ab.addingReportingOverflow(params.int("value"))))]
  }

  public static let mul = ClosureNodeType(
    NodeTypeSpec(
      name: "toy.mul", version: 1, doc: "a × factor",
      inputs: [PortSpec("a", "int")], outputs: [PortSpec("out", "int")],
      params: [ParamSpec("factor", .int, default: .int(1), doc: "multiplier")])
  ) { inputs, params, _ in
    ["out": int(try checked("a × factor", intValue(inputs["a"]).multipliedReportingOverflow(by: params.int("factor"))))]
  }

  /// Integer division: lets tests change an upstream value without changing this node's output (early cutoff).
  public static let div = ClosureNodeType(
    NodeTypeSpec(
      name: "toy.div", version: 1, doc: "a ÷ divisor, rounded down",
      inputs: [PortSpec("a", "int")], outputs: [PortSpec("out", "int")],
      params: [ParamSpec("divisor", .int, default: .int(1), min: 1, doc: "divisor")])
  ) { inputs, params, _ in
    ["out": int(try checked("a ÷ divisor", intValue(inputs["a"]).dividedReportingOverflow(by: params.int("divisor"))))]
  }

  public static let slow = ClosureNodeType(
    NodeTypeSpec(
      name: "toy.slow", version: 1, doc: "passes a through after `steps` sleeps of `ms`, reporting progress",
      inputs: [PortSpec("a", "int", optional: true)], outputs: [PortSpec("out", "int")],
      params: [
        ParamSpec("steps", .int, default: .int(5), min: 1, max: 100_000, doc: "progress steps"),
        ParamSpec("ms", .int, default: .int(10), min: 0, doc: "milliseconds per step"),
        ParamSpec("log", .string, default: .string(""), doc: "file to append 'start/done <node>' lines to"),
        ParamSpec("tag", .string, default: .string(""), doc: "only changes the key"),
      ],
      resource: .heavy)
  ) { inputs, params, context in
    let steps = try params.int("steps")
    let ms = try params.int("ms")
    let log = try params.string("log")
    if !log.isEmpty { try appendLine("start \(context.node) \(Date().timeIntervalSince1970)", to: log) }
    for step in 1...steps {
      try sleep(ms: ms)
      try context.progress(step: step, total: steps)
    }
    if !log.isEmpty { try appendLine("done \(context.node) \(Date().timeIntervalSince1970)", to: log) }
    return ["out": int(try intValue(inputs["a"]))]
  }

  public static let io = ClosureNodeType(
    NodeTypeSpec(
      name: "toy.io", version: 1, doc: "like toy.slow but an I/O node: may overlap with heavy nodes",
      inputs: [PortSpec("a", "int", optional: true)], outputs: [PortSpec("out", "int")],
      params: [
        ParamSpec("ms", .int, default: .int(10), min: 0, doc: "milliseconds to sleep"),
        ParamSpec("log", .string, default: .string(""), doc: "file to append 'start/done <node>' lines to"),
      ],
      resource: .io)
  ) { inputs, params, context in
    let log = try params.string("log")
    if !log.isEmpty { try appendLine("start \(context.node) \(Date().timeIntervalSince1970)", to: log) }
    try sleep(ms: params.int("ms"))
    if !log.isEmpty { try appendLine("done \(context.node) \(Date().timeIntervalSince1970)", to: log) }
    return ["out": int(try intValue(inputs["a"]))]
  }

  public static let fail = ClosureNodeType(
    NodeTypeSpec(
      name: "toy.fail", version: 1, doc: "always fails with `message`",
      inputs: [PortSpec("a", "int", optional: true)], outputs: [PortSpec("out", "int")],
      params: [ParamSpec("message", .string, default: .string("toy failure"), doc: "the error")])
  ) { _, params, _ in
    throw WorkflowError.usage(try params.string("message"))
  }

  /// Appends "<node> <key>" to `log` each time it runs: tests count how often a computation happened.
  public static let counter = ClosureNodeType(
    NodeTypeSpec(
      name: "toy.counter", version: 1, doc: "passes a through and appends a line to `log` per run",
      inputs: [PortSpec("a", "int", optional: true)], outputs: [PortSpec("out", "int")],
      params: [
        ParamSpec("log", .string, default: .string(""), doc: "file that gets one line per run (none when empty)"),
        ParamSpec("value", .int, default: .int(0), doc: "added to a"),
        ParamSpec("ms", .int, default: .int(0), min: 0, doc: "milliseconds to sleep first"),
      ])
  ) { inputs, params, context in
    try sleep(ms: params.int("ms"))
    let log = try params.string("log")
    if !log.isEmpty { try appendLine("\(context.node) \(context.key)", to: log) }
    return ["out": int(try checked("a + value", intValue(inputs["a"]).addingReportingOverflow(params.int("value"))))]
  }

  /// Reads its model file (size in bytes is the output), logging each open: tests check cached reruns don't.
  public static let model = ClosureNodeType(
    NodeTypeSpec(
      name: "toy.model", version: 1, doc: "outputs the byte count of its model's files",
      outputs: [PortSpec("out", "int")],
      params: [
        ParamSpec("model", .model, doc: "a model from models:"),
        ParamSpec("log", .string, default: .string(""), doc: "file that gets one line per model read"),
      ],
      resource: .io)
  ) { _, params, context in
    let model = try params.model("model")
    var total = 0
    for file in model.files {
      guard let data = FileManager.default.contents(atPath: file) else {
        throw WorkflowError.io(path: file, message: "cannot read model file")
      }
      total += data.count
    }
    let log = try params.string("log")
    if !log.isEmpty { try appendLine("open \(context.node) \(model.path)", to: log) }
    return ["out": int(total)]
  }

  /// Writes `a` to `path`: an always-run node, like save-image.
  public static let write = ClosureNodeType(
    NodeTypeSpec(
      name: "toy.write", version: 1, doc: "writes the value of a to a text file (always runs)",
      inputs: [PortSpec("a", "int")], outputs: [],
      params: [ParamSpec("path", .string, doc: "output file")],
      resource: .io, cachePolicy: .alwaysRun)
  ) { inputs, params, _ in
    let path = try params.string("path")
    do {
      try Data((String(try intValue(inputs["a"])) + "\n").utf8).write(to: URL(fileURLWithPath: path))
    } catch {
      throw WorkflowError.io(path: path, message: "cannot write: \(error.localizedDescription)")
    }
    return [:]
  }

  /// Text in, text out: for literal text inputs and `${param}` interpolation.
  public static let concat = ClosureNodeType(
    NodeTypeSpec(
      name: "toy.concat", version: 1, doc: "text + suffix",
      inputs: [PortSpec("text", "text")], outputs: [PortSpec("out", "text")],
      params: [
        ParamSpec("suffix", .string, default: .string("")),
        ParamSpec("mode", .choice(["plain", "upper"]), default: .string("plain")),
      ])
  ) { inputs, params, _ in
    var text = try inputs.required("text").text + params.string("suffix")
    if try params.string("mode") == "upper" { text = text.uppercased() }
    return ["out": Artifact(text: text)]
  }

  /// Text length as an int (a text → int edge for type-mismatch tests).
  public static let length = ClosureNodeType(
    NodeTypeSpec(
      name: "toy.length", version: 1, doc: "number of characters",
      inputs: [PortSpec("text", "text")], outputs: [PortSpec("out", "int")])
  ) { inputs, _, _ in
    ["out": int(try inputs.required("text").text.count)]
  }

  public static let all: [any NodeType] = [add, mul, div, slow, io, fail, counter, model, write, concat, length, image]

  /// Whether the environment asks for toy nodes (`COGFLOW_TOY_NODES=1`).
  public static var enabledByEnvironment: Bool { ProcessInfo.processInfo.environment["COGFLOW_TOY_NODES"] == "1" }
}
