import ArgumentParser
import Foundation
import Workflow

/// `run --shard`: picks the shard's part before anything touches the cache, and records what the run did.
enum ShardCLI {
  /// Bad `--shard` exits 2 before the cache is opened; an empty shard says so and runs nothing.
  static func select(_ text: String?, _ workflow: ResolvedWorkflow) throws -> (ResolvedWorkflow, ShardSpec?) {
    guard let text else { return (workflow, nil) }
    let spec: ShardSpec
    do {
      spec = try ShardSpec.parse(text)
    } catch {
      WorkflowCLI.printError("error: \(error)")
      throw ExitCode(2)
    }
    let (part, units, total) = Sharding.select(workflow, shard: spec)
    if units == 0 {
      WorkflowCLI.printError(
        "shard \(spec) is empty: the workflow has \(total) instance\(total == 1 ? "" : "s") for \(spec.count) shards;"
          + " nothing to do")
    }
    return (part, spec)
  }

  /// Runs the engine and leaves a `RunRecord` in the cache (for `report` and `status`).
  static func recorded(_ engine: Engine, shard: ShardSpec?, cache: DiskCache?) -> RunResult {
    let started = Date()
    let result = engine.run()
    if let cache {
      do {
        try RunRecord(workflow: engine.workflow, shard: shard, result: result, started: started).write(to: cache)
      } catch {
        WorkflowCLI.printError("warning: run record not written (report/status will not see this run): \(error)")
      }
    }
    return result
  }

  /// Shards whose part is not complete in the cache, or whose last recorded run did not succeed.
  static func incompleteShards(_ workflow: ResolvedWorkflow, registry: NodeRegistry, cache: DiskCache, count: Int)
    throws -> [Int]
  {
    let records = RunRecord.all(in: cache, workflowID: RunRecord.workflowID(workflow))
    var incomplete: [Int] = []
    for index in 0..<count {
      let spec = try ShardSpec(index: index, count: count)
      let (part, _, _) = Sharding.select(workflow, shard: spec)
      let plan = Engine(workflow: part, registry: registry, cache: cache).plan()
      let missing = plan.contains { item in
        item.status != "cached" && part.node(item.node)?.spec.cachePolicy != .alwaysRun
      }
      let last = records.last { $0.shard == spec.description }
      if missing || (last != nil && last?.status != "ok") { incomplete.append(index) }
    }
    return incomplete
  }
}

/// Quotes for POSIX sh: 'text', with ' written as '\''.
func shellQuote(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'" }

/// The absolute form of a path given on the command line.
func absolutePath(_ path: String) -> String {
  URL(
    fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true)
  )
  .standardizedFileURL.path
}

/// A program on $PATH, or nil.
func findExecutable(_ name: String) -> String? {
  let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
  for dir in path.split(separator: ":") {
    let candidate = "\(dir)/\(name)"
    if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
  }
  return nil
}

/// Runs a program to completion and returns its status, stdout and stderr (small outputs only).
func runProgram(_ path: String, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: path)
  process.arguments = arguments
  // stderr goes to a file so that only one pipe is read (a full pipe would block the child).
  let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("cogflow-\(UUID().uuidString).err").path
  _ = FileManager.default.createFile(atPath: errPath, contents: nil)
  defer { try? FileManager.default.removeItem(atPath: errPath) }
  let out = Pipe()
  process.standardOutput = out
  process.standardError = FileHandle(forWritingAtPath: errPath)
  try process.run()
  let outData = out.fileHandleForReading.readDataToEndOfFile()
  process.waitUntilExit()
  let errData = FileManager.default.contents(atPath: errPath) ?? Data()
  return (process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
}

struct SubmitCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "submit",
    abstract: "Run a batch workflow as shards on a cluster: a Slurm job array or a Kubernetes Indexed Job.",
    subcommands: [SubmitSlurm.self, SubmitK8s.self])
}

/// What both submitters share: the workflow, how many shards, the cache every shard uses.
struct ShardedBatch {
  var workflow: ResolvedWorkflow
  var registry: NodeRegistry
  var file: WorkflowFileOptions
  var shards: Int
  var units: Int

  init(_ file: WorkflowFileOptions, shards: Int) throws {
    guard shards >= 1, shards <= ShardSpec.maxCount else {
      WorkflowCLI.printError("error: --shards must be 1...\(ShardSpec.maxCount), found \(shards)")
      throw ExitCode(2)
    }
    (workflow, registry) = try WorkflowCLI.load(file)
    self.file = file
    self.shards = shards
    units = Sharding.units(of: workflow, count: shards).count
    if units < shards {
      WorkflowCLI.printError(
        "note: the workflow has \(units) instance\(units == 1 ? "" : "s"); shards \(units)...\(shards - 1) will be empty"
      )
    }
  }

  /// `--set …` arguments as the shards will get them.
  var setArguments: [String] { file.sets.flatMap { ["--set", $0] } }

  var safeName: String {
    let lowered = workflow.name.lowercased().map {
      ($0.isLetter && $0.isASCII) || ($0.isNumber && $0.isASCII) ? $0 : "-"
    }
    let trimmed = String(lowered).split(separator: "-").joined(separator: "-")
    return String((trimmed.isEmpty ? "batch" : trimmed).prefix(40))
  }

  var toyNodes: Bool { file.toyNodes || ToyNodes.enabledByEnvironment }
}

/// Rejects values that would break out of a `#SBATCH` line or a YAML scalar.
func singleLine(_ value: String?, _ option: String) throws {
  if let value, value.contains(where: { $0.isNewline }) || value.isEmpty {
    WorkflowCLI.printError("error: \(option) must be one non-empty line")
    throw ExitCode(2)
  }
}

struct SubmitSlurm: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "slurm",
    abstract: "Submit an sbatch array (one task per shard, each `cogflow run --shard auto`) and an afterok gather job.",
    discussion: """
      Every task uses the same cache folder (--cache): it must be on a filesystem all nodes see. The gather job
      runs `cogflow report` once all tasks succeeded. Scripts and logs go to --dir. Prints the job ids.
      A failed or cancelled shard is rerun with the same command plus --only-failed: it resumes from the cache.
      """)
  @OptionGroup var file: WorkflowFileOptions
  @Option(help: "Number of shards (array tasks).") var shards: Int
  @Option(help: "Slurm partition.") var partition: String?
  @Option(help: "Time limit per task (Slurm syntax, e.g. 2:00:00).") var time: String?
  @Option(help: "CPUs per task.") var cpusPerTask: Int?
  @Option(help: "Memory per task (Slurm syntax, e.g. 24G).") var mem: String?
  @Option(help: "Shared cache folder (default: $COGFLOW_CACHE, else the user cache folder).") var cache: String?
  @Option(help: "Folder for the job scripts, logs and the report.") var dir: String = "cogflow-slurm"
  @Option(help: "The cogflow executable the tasks run (default: this one).") var cogflow: String?
  @Flag(help: "Submit only the shards that are not complete in the cache (or whose last run failed).")
  var onlyFailed = false
  @Flag(help: "Print the scripts and the sbatch commands; submit nothing.") var dryRun = false

  func run() throws {
    for (value, name) in [(partition, "--partition"), (time, "--time"), (mem, "--mem"), (cache, "--cache")] {
      try singleLine(value, name)
    }
    if let cpusPerTask, cpusPerTask < 1 {
      WorkflowCLI.printError("error: --cpus-per-task must be at least 1")
      throw ExitCode(2)
    }
    let batch = try ShardedBatch(file, shards: shards)
    let cacheURL = DiskCache.defaultLocation(explicit: cache.map(absolutePath))
    var indices = Array(0..<shards)
    if onlyFailed {
      let disk: DiskCache
      do { disk = try DiskCache(root: cacheURL) } catch {
        WorkflowCLI.printError("error: \(error)")
        throw ExitCode(1)
      }
      indices = try ShardCLI.incompleteShards(batch.workflow, registry: batch.registry, cache: disk, count: shards)
      if indices.isEmpty {
        print("every shard of \(batch.workflow.name) is complete in \(cacheURL.path); nothing to submit")
        return
      }
    }
    let folder = absolutePath(dir)
    guard !folder.contains(where: { $0.isWhitespace }) else {
      WorkflowCLI.printError("error: --dir '\(folder)': #SBATCH --output cannot hold whitespace; pick a folder without")
      throw ExitCode(2)
    }
    let name = batch.safeName
    let binary = absolutePath(cogflow ?? Self.ownExecutable())
    let workflowPath = absolutePath(file.workflow)
    let reportDir = "\(folder)/report-\(name)"

    var header: [String] = []
    if let partition { header.append("#SBATCH --partition=\(partition)") }
    if let time { header.append("#SBATCH --time=\(time)") }
    var environment = ["export COGFLOW_CACHE=\(shellQuote(cacheURL.path))"]
    if let models = file.models ?? ProcessInfo.processInfo.environment["COGFLOW_MODELS"] {
      environment.append("export COGFLOW_MODELS=\(shellQuote(absolutePath(models)))")
    }
    if batch.toyNodes { environment.append("export COGFLOW_TOY_NODES=1") }
    let sets = batch.setArguments.map(shellQuote).joined(separator: " ")

    var arrayLines = ["#!/bin/bash", "#SBATCH --job-name=cogflow-\(name)", "#SBATCH --array=\(Self.ranges(indices))"]
    arrayLines.append("#SBATCH --output=\(folder)/\(name)-%A_%a.out")
    arrayLines += header
    if let cpusPerTask { arrayLines.append("#SBATCH --cpus-per-task=\(cpusPerTask)") }
    if let mem { arrayLines.append("#SBATCH --mem=\(mem)") }
    arrayLines += [
      "# One shard of \(batch.units) instances in \(shards) shards; written by cogflow submit slurm.", "set -eu",
    ]
    // Like sbatch's default: relative paths in the workflow (save-image's path) resolve where submit ran.
    let workdir = "cd \(shellQuote(FileManager.default.currentDirectoryPath))"
    arrayLines += environment + ["export COGFLOW_SHARD_COUNT=\(shards)", workdir]
    arrayLines.append("exec \(shellQuote(binary)) run \(shellQuote(workflowPath)) --shard auto --quiet \(sets)")

    var gatherLines = ["#!/bin/bash", "#SBATCH --job-name=cogflow-\(name)-gather"]
    gatherLines.append("#SBATCH --output=\(folder)/\(name)-gather-%j.out")
    gatherLines += header + ["set -eu"] + environment + [workdir]
    gatherLines.append(
      "exec \(shellQuote(binary)) report \(shellQuote(workflowPath)) --out \(shellQuote(reportDir)) \(sets)")

    let arrayScript = arrayLines.joined(separator: "\n") + "\n"
    let gatherScript = gatherLines.joined(separator: "\n") + "\n"
    let arrayPath = "\(folder)/\(name)-array.sbatch"
    let gatherPath = "\(folder)/\(name)-gather.sbatch"
    if dryRun {
      print("# \(arrayPath)\n\(arrayScript)\n# \(gatherPath)\n\(gatherScript)")
      print("# sbatch --parsable \(arrayPath)\n# sbatch --parsable --dependency=afterok:<array job id> \(gatherPath)")
      return
    }
    guard let sbatch = findExecutable("sbatch") else {
      WorkflowCLI.printError(
        "error: sbatch not found on PATH: run this on a Slurm login node, or use --dry-run to print the scripts")
      throw ExitCode(1)
    }
    do {
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
      try arrayScript.write(toFile: arrayPath, atomically: true, encoding: .utf8)
      try gatherScript.write(toFile: gatherPath, atomically: true, encoding: .utf8)
    } catch {
      WorkflowCLI.printError("error: cannot write the job scripts to \(folder): \(error.localizedDescription)")
      throw ExitCode(1)
    }
    let arrayID = try Self.submit(sbatch, ["--parsable", arrayPath], what: "the shard array")
    let gatherID: String
    do {
      gatherID = try Self.submit(
        sbatch, ["--parsable", "--dependency=afterok:\(arrayID)", gatherPath], what: "the gather job")
    } catch {
      // Without its gather job the array would finish unnoticed: take it back.
      if let scancel = findExecutable("scancel") { _ = try? runProgram(scancel, [arrayID]) }
      WorkflowCLI.printError("the shard array \(arrayID) was cancelled again")
      throw error
    }
    print("array job \(arrayID): \(indices.count) of \(shards) shards (tasks \(Self.ranges(indices)))")
    print("gather job \(gatherID) (afterok:\(arrayID)): report in \(reportDir)")
    print("logs in \(folder); follow with: cogflow status \(arrayID) --cache \(shellQuote(cacheURL.path))")
  }

  /// This process's executable: /proc/self/exe on Linux; else argv[0], looked up on PATH when it has no slash.
  static func ownExecutable() -> String {
    if let resolved = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return resolved }
    let argv0 = CommandLine.arguments[0]
    return argv0.contains("/") ? argv0 : (findExecutable(argv0) ?? argv0)
  }

  /// sbatch --parsable prints "ID" or "ID;cluster".
  static func submit(_ sbatch: String, _ arguments: [String], what: String) throws -> String {
    let result: (status: Int32, out: String, err: String)
    do { result = try runProgram(sbatch, arguments) } catch {
      WorkflowCLI.printError("error: cannot start \(sbatch): \(error)")
      throw ExitCode(1)
    }
    let id = result.out.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
    guard result.status == 0, !id.isEmpty, id.allSatisfy(\.isNumber) else {
      let reason = result.err.trimmingCharacters(in: .whitespacesAndNewlines)
      WorkflowCLI.printError(
        "error: Slurm refused \(what) (sbatch exit \(result.status)): \(reason.isEmpty ? result.out : reason)")
      throw ExitCode(1)
    }
    return id
  }

  /// [0, 1, 2, 5] → "0-2,5".
  static func ranges(_ indices: [Int]) -> String {
    var parts: [String] = []
    var i = 0
    while i < indices.count {
      var j = i
      while j + 1 < indices.count && indices[j + 1] == indices[j] + 1 { j += 1 }
      parts.append(i == j ? "\(indices[i])" : "\(indices[i])-\(indices[j])")
      i = j + 1
    }
    return parts.joined(separator: ",")
  }
}

/// A small YAML writer for the manifests: every string is double-quoted (JSON escaping is valid YAML).
indirect enum YAMLOut {
  case map([(String, YAMLOut)])
  case list([YAMLOut])
  case string(String)
  case int(Int)
  case bool(Bool)

  func render(indent: Int = 0) -> String {
    let pad = String(repeating: " ", count: indent)
    switch self {
    case .map(let pairs):
      return pairs.map { key, value in
        switch value {
        case .map(let inner) where !inner.isEmpty: return "\(pad)\(key):\n" + value.render(indent: indent + 2)
        case .list(let items) where !items.isEmpty: return "\(pad)\(key):\n" + value.render(indent: indent)
        default: return "\(pad)\(key): \(value.scalar)"
        }
      }.joined(separator: "\n")
    case .list(let items):
      return items.map { item in
        let body = item.render(indent: indent + 2)
        if case .map(let inner) = item, !inner.isEmpty { return "\(pad)- " + body.dropFirst(indent + 2) }
        return "\(pad)- \(item.scalar)"
      }.joined(separator: "\n")
    default: return pad + scalar
    }
  }

  var scalar: String {
    switch self {
    case .string(let s): return Value.jsonString(s)
    case .int(let i): return String(i)
    case .bool(let b): return b ? "true" : "false"
    case .map: return "{}"
    case .list: return "[]"
    }
  }
}

struct SubmitK8s: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "k8s",
    abstract: "Write a Kubernetes Indexed Job (one index per shard) and a gather Job, to stdout or --out DIR.",
    discussion: """
      The workflow file travels in a ConfigMap; every pod mounts the cache PVC (ReadWriteMany, a filesystem with
      working flock) at /cache. Kubernetes has no afterok: apply the gather Job once the shards are done, e.g.
      kubectl apply -f DIR/shards.yaml && kubectl wait --for=condition=complete --timeout=24h job/NAME &&
      kubectl apply -f DIR/gather.yaml. Nothing is sent to a cluster.
      """)
  @OptionGroup var file: WorkflowFileOptions
  @Option(help: "Number of shards (completions).") var shards: Int
  @Option(help: "Container image with cogflow on PATH.") var image: String
  @Option(help: "PersistentVolumeClaim of the shared cache (mounted at /cache).") var cachePvc: String
  @Option(help: "PersistentVolumeClaim with the model folders (mounted read-only at /models).") var modelsPvc: String?
  @Option(help: "Namespace of the objects.") var namespace: String?
  @Option(help: "Pods at once (default: all shards).") var parallelism: Int?
  @Option(help: "Retries per shard index before it counts as failed.") var backoffLimitPerIndex: Int = 1
  @Option(help: "CPU request and limit per pod (Kubernetes quantity).") var cpu: String = "4"
  @Option(help: "Memory request and limit per pod (Kubernetes quantity).") var memory: String = "24Gi"
  @Option(help: "Write shards.yaml and gather.yaml into this folder instead of printing them.") var out: String?

  func run() throws {
    for (value, name) in [(image, "--image"), (cachePvc, "--cache-pvc"), (cpu, "--cpu"), (memory, "--memory")] {
      try singleLine(value, name)
    }
    try singleLine(namespace, "--namespace")
    try singleLine(modelsPvc, "--models-pvc")
    if (parallelism ?? 1) < 1 || backoffLimitPerIndex < 0 {
      WorkflowCLI.printError("error: --parallelism must be at least 1 and --backoff-limit-per-index at least 0")
      throw ExitCode(2)
    }
    let batch = try ShardedBatch(file, shards: shards)
    let source: String
    do { source = try String(contentsOfFile: file.workflow, encoding: .utf8) } catch {
      WorkflowCLI.printError("error: cannot read \(file.workflow): \(error.localizedDescription)")
      throw ExitCode(2)
    }
    // Kubernetes refuses ConfigMaps over 1 MiB (data and metadata together).
    guard source.utf8.count <= 900_000 else {
      WorkflowCLI.printError(
        "error: \(file.workflow) is \(source.utf8.count) bytes, too big for a ConfigMap (1 MiB);"
          + " bake it into the image or put it on a volume")
      throw ExitCode(2)
    }
    let name = "cogflow-\(batch.safeName)"
    let fileName = "workflow.yaml"
    func metadata(_ objectName: String) -> YAMLOut {
      var pairs: [(String, YAMLOut)] = [("name", .string(objectName))]
      if let namespace { pairs.append(("namespace", .string(namespace))) }
      pairs.append(
        ("labels", .map([("app.kubernetes.io/name", .string("cogflow")), ("cogflow/batch", .string(name))])))
      return .map(pairs)
    }
    var env: [YAMLOut] = [.map([("name", .string("COGFLOW_CACHE")), ("value", .string("/cache"))])]
    var mounts: [YAMLOut] = [
      .map([("name", .string("cache")), ("mountPath", .string("/cache"))]),
      .map([("name", .string("workflow")), ("mountPath", .string("/workflow")), ("readOnly", .bool(true))]),
    ]
    var volumes: [YAMLOut] = [
      .map([("name", .string("cache")), ("persistentVolumeClaim", .map([("claimName", .string(cachePvc))]))]),
      .map([("name", .string("workflow")), ("configMap", .map([("name", .string(name + "-workflow"))]))]),
    ]
    if let modelsPvc {
      env.append(.map([("name", .string("COGFLOW_MODELS")), ("value", .string("/models"))]))
      mounts.append(.map([("name", .string("models")), ("mountPath", .string("/models")), ("readOnly", .bool(true))]))
      volumes.append(
        .map([
          ("name", .string("models")),
          ("persistentVolumeClaim", .map([("claimName", .string(modelsPvc)), ("readOnly", .bool(true))])),
        ]))
    }
    if batch.toyNodes { env.append(.map([("name", .string("COGFLOW_TOY_NODES")), ("value", .string("1"))])) }
    let resources = YAMLOut.map([
      ("requests", .map([("cpu", .string(cpu)), ("memory", .string(memory))])),
      ("limits", .map([("cpu", .string(cpu)), ("memory", .string(memory))])),
    ])
    func podSpec(_ container: String, _ command: [String], extraEnv: [YAMLOut]) -> YAMLOut {
      .map([
        ("restartPolicy", .string("Never")),
        (
          "containers",
          .list([
            .map([
              ("name", .string(container)), ("image", .string(image)), ("command", .list(command.map(YAMLOut.string))),
              ("env", .list(env + extraEnv)), ("resources", resources), ("volumeMounts", .list(mounts)),
            ])
          ])
        ),
        ("volumes", .list(volumes)),
      ])
    }
    let workflowPath = "/workflow/\(fileName)"
    let configMap = YAMLOut.map([
      ("apiVersion", .string("v1")), ("kind", .string("ConfigMap")), ("metadata", metadata(name + "-workflow")),
      ("data", .map([(fileName, .string(source))])),
    ])
    let shardJob = YAMLOut.map([
      ("apiVersion", .string("batch/v1")), ("kind", .string("Job")), ("metadata", metadata(name)),
      (
        "spec",
        .map([
          ("completionMode", .string("Indexed")), ("completions", .int(shards)),
          ("parallelism", .int(min(parallelism ?? shards, shards))),
          ("backoffLimitPerIndex", .int(backoffLimitPerIndex)), ("maxFailedIndexes", .int(shards)),
          (
            "template",
            .map([
              ("metadata", .map([("labels", .map([("cogflow/batch", .string(name))]))])),
              (
                "spec",
                podSpec(
                  "shard", ["cogflow", "run", workflowPath, "--shard", "auto", "--quiet"] + batch.setArguments,
                  extraEnv: [.map([("name", .string("COGFLOW_SHARD_COUNT")), ("value", .string(String(shards)))])])
              ),
            ])
          ),
        ])
      ),
    ])
    let gatherJob = YAMLOut.map([
      ("apiVersion", .string("batch/v1")), ("kind", .string("Job")), ("metadata", metadata(name + "-gather")),
      (
        "spec",
        .map([
          ("backoffLimit", .int(1)),
          (
            "template",
            .map([
              (
                "spec",
                podSpec(
                  "gather",
                  ["cogflow", "report", workflowPath, "--out", "/cache/reports/\(batch.safeName)"] + batch.setArguments,
                  extraEnv: [])
              )
            ])
          ),
        ])
      ),
    ])
    let comment = "# written by cogflow submit k8s: \(batch.units) instances in \(shards) shards\n"
    let shardsText = comment + "---\n" + configMap.render() + "\n---\n" + shardJob.render() + "\n"
    let gatherText =
      "# apply after job/\(name) completed; the report lands in the cache volume under reports/\n---\n"
      + gatherJob.render() + "\n"
    guard let out else {
      print(shardsText + gatherText, terminator: "")
      return
    }
    do {
      try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
      try shardsText.write(toFile: out + "/shards.yaml", atomically: true, encoding: .utf8)
      try gatherText.write(toFile: out + "/gather.yaml", atomically: true, encoding: .utf8)
    } catch {
      WorkflowCLI.printError("error: cannot write the manifests to \(out): \(error.localizedDescription)")
      throw ExitCode(1)
    }
    print("wrote \(out)/shards.yaml (ConfigMap + Indexed Job \(name)) and \(out)/gather.yaml")
  }
}
