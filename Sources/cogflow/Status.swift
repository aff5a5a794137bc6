import ArgumentParser
import Foundation
import Workflow

struct StatusCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status",
    abstract: "Summarize a Slurm shard array: shards done, running, pending, failed, and the nodes that failed.",
    discussion: """
      Reads sacct when Slurm keeps accounting, else scontrol (which remembers finished jobs for MinJobAge).
      The failed workflow nodes come from the run records that each shard leaves in the cache (--cache).
      """)
  @Argument(help: "The array job id that `cogflow submit slurm` printed.") var jobID: String
  @Option(help: "Cache folder the shards used (default: $COGFLOW_CACHE, else the user cache folder).") var cache:
    String?

  struct Task {
    var index: String
    var state: String
    var nodes: String
  }

  static let failedStates: Set<String> = [
    "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
  ]

  func run() throws {
    guard !jobID.isEmpty, jobID.allSatisfy(\.isNumber) else {
      WorkflowCLI.printError("error: '\(jobID.prefix(40))' is not a Slurm job id (digits, as submit printed)")
      throw ExitCode(2)
    }
    let tasks = try Self.tasks(jobID)
    var counts: [String: Int] = [:]
    for task in tasks { counts[Self.category(task.state), default: 0] += 1 }
    let summary = ["done", "running", "pending", "failed"].map { "\(counts[$0] ?? 0) \($0)" }
    print("job \(jobID): \(tasks.count) shard task\(tasks.count == 1 ? "" : "s"): \(summary.joined(separator: ", "))")
    let records = (try? DiskCache(root: DiskCache.defaultLocation(explicit: cache))).map { RunRecord.all(in: $0) } ?? []
    for task in tasks {
      let category = Self.category(task.state)
      var line = "  task \(task.index): \(task.state.lowercased())"
      if !task.nodes.isEmpty && task.nodes != "(null)" && task.nodes != "None assigned" { line += " on \(task.nodes)" }
      print(line)
      // The last recorded run of this task: its failed and interrupted workflow nodes.
      guard
        let record = records.last(where: {
          $0.scheduler["SLURM_ARRAY_JOB_ID"] == jobID && $0.scheduler["SLURM_ARRAY_TASK_ID"] == task.index
        })
      else {
        if category == "failed" { print("    no run record in the cache: the task ended before its run finished") }
        continue
      }
      for (node, entry) in record.nodes.sorted(by: { $0.key < $1.key })
      where entry.outcome == "failed" || entry.outcome == "cancelled" {
        print("    \(entry.outcome) node \(node)\(entry.error.map { ": \($0)" } ?? "")")
      }
    }
    if (counts["failed"] ?? 0) > 0 {
      print("rerun the failed shards with the same `cogflow submit slurm …` command plus --only-failed")
    }
  }

  static func category(_ state: String) -> String {
    let base = state.split(separator: " ").first.map(String.init) ?? state
    switch base {
    case "COMPLETED": return "done"
    case "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STAGE_OUT": return "running"
    case "PENDING", "REQUEUED", "RESIZING": return "pending"
    default: return failedStates.contains(base) ? "failed" : "pending"
    }
  }

  /// The array's tasks, from sacct if accounting works, else scontrol.
  static func tasks(_ jobID: String) throws -> [Task] {
    if let sacct = findExecutable("sacct"),
      let result = try? runProgram(sacct, ["-j", jobID, "-X", "-n", "-P", "-o", "JobID,State,NodeList"]),
      result.status == 0
    {
      let tasks = parseSacct(result.out, jobID: jobID)
      if !tasks.isEmpty { return tasks }
    }
    guard let scontrol = findExecutable("scontrol") else {
      WorkflowCLI.printError("error: neither sacct nor scontrol found on PATH: run this on a Slurm login node")
      throw ExitCode(1)
    }
    let result = try runProgram(scontrol, ["show", "job", "-o", jobID])
    let tasks = parseScontrol(result.out)
    guard result.status == 0, !tasks.isEmpty else {
      let reason = result.err.trimmingCharacters(in: .whitespacesAndNewlines)
      WorkflowCLI.printError(
        "error: Slurm knows no job \(jobID) (scontrol: \(reason.isEmpty ? "no output" : reason));"
          + " finished jobs are forgotten after MinJobAge unless accounting (sacct) is set up")
      throw ExitCode(1)
    }
    return tasks
  }

  /// Lines "123_4|COMPLETED|node1"; a pending range shows as "123_[5-7]".
  static func parseSacct(_ text: String, jobID: String) -> [Task] {
    var tasks: [Task] = []
    for line in text.split(separator: "\n") {
      let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
      guard fields.count >= 3, fields[0].hasPrefix(jobID + "_") else { continue }
      let index = String(fields[0].dropFirst(jobID.count + 1))
      for i in expand(index) { tasks.append(Task(index: i, state: fields[1], nodes: fields[2])) }
    }
    return tasks.sorted { (Int($0.index) ?? 0) < (Int($1.index) ?? 0) }
  }

  /// `scontrol show job -o` prints one line per task (pending ones folded into one line with a range).
  static func parseScontrol(_ text: String) -> [Task] {
    var tasks: [Task] = []
    for line in text.split(separator: "\n") {
      var fields: [String: String] = [:]
      for word in line.split(separator: " ") {
        guard let eq = word.firstIndex(of: "=") else { continue }
        fields[String(word[..<eq])] = String(word[word.index(after: eq)...])
      }
      guard let index = fields["ArrayTaskId"], let state = fields["JobState"] else { continue }
      for i in expand(index) { tasks.append(Task(index: i, state: state, nodes: fields["NodeList"] ?? "")) }
    }
    return tasks.sorted { (Int($0.index) ?? 0) < (Int($1.index) ?? 0) }
  }

  /// "3", "[5-7]", "5-7%2", "1,3-4" → the single indices (at most 100,000, so a bogus range stays bounded).
  static func expand(_ text: String) -> [String] {
    let body = text.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).split(separator: "%").first ?? ""
    var out: [String] = []
    for part in body.split(separator: ",") {
      let ends = part.split(separator: "-")
      if ends.count == 2, let a = Int(ends[0]), let b = Int(ends[1]), a <= b, b - a < 100_000 {
        out += (a...b).map(String.init)
      } else {
        out.append(String(part))
      }
      if out.count > 100_000 { break }
    }
    return out
  }
}
