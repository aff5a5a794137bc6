import Foundation
import XCTest

/// `cogflow submit slurm` and `cogflow status`. The real-cluster test needs a Slurm whose node is idle:
/// CI's .ci/run starts a one-node one (scripts/slurm-up.sh); elsewhere it skips and says how to start it.
final class SlurmCLITests: XCTestCase {
  override func setUp() {
    XCTAssertTrue(FileManager.default.isExecutableFile(atPath: CLI.binary), "build cogflow first: \(CLI.binary)")
  }

  static func tool(_ name: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
      let path = "\(dir)/\(name)"
      if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
  }

  /// Runs a Slurm client command (stdout only).
  @discardableResult
  static func slurm(_ name: String, _ arguments: [String]) -> String {
    guard let path = tool(name) else { return "" }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle(forWritingAtPath: "/dev/null")
    guard (try? process.run()) != nil else { return "" }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
  }

  static var slurmUp: Bool {
    tool("sbatch") != nil && slurm("sinfo", ["-h", "-N", "-o", "%t"]).split(separator: "\n").contains { $0 == "idle" }
  }

  static func waitForJobs(_ ids: [String], timeout: Double = 240) -> Bool {
    CLI.waitFor(timeout: timeout) {
      usleep(200_000)
      return slurm("squeue", ["-h", "-j", ids.joined(separator: ","), "-o", "%i"])
        .trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
    }
  }

  /// "array job 12: …" / "gather job 13 …" → ("12", "13").
  static func jobIDs(_ stdout: String) -> (array: String, gather: String)? {
    func id(after prefix: String) -> String? {
      guard let line = stdout.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return nil }
      return String(line.dropFirst(prefix.count).prefix { $0.isNumber })
    }
    guard let a = id(after: "array job "), let g = id(after: "gather job ") else { return nil }
    return (a, g)
  }

  func testDryRunPrintsBothScripts() throws {
    let scratch = Scratch()
    let workflow = scratch.write("batch.yaml", ToyBatch.text)
    let env = CLI.environment(cache: scratch.cache)
    let out = try CLI.run(
      [
        "submit", "slurm", workflow, "--shards", "3", "--partition", "gpu", "--time", "1:00:00", "--cpus-per-task", "8",
        "--mem", "24G", "--set", "tag=it's", "--dry-run", "--dir", "jobs",
      ], env: env, cwd: scratch.path)
    XCTAssertEqual(out.status, 0, out.stderr)
    for line in [
      "#SBATCH --array=0-2", "#SBATCH --partition=gpu", "#SBATCH --time=1:00:00", "#SBATCH --cpus-per-task=8",
      "#SBATCH --mem=24G", "export COGFLOW_SHARD_COUNT=3", "export COGFLOW_CACHE='\(scratch.cache)'",
      "--shard auto --quiet '--set' 'tag=it'\\''s'", "--dependency=afterok:<array job id>",
      "report '\(workflow)' --out '\(scratch.path)/jobs/report-toy-batch'",
    ] {
      XCTAssertTrue(out.stdout.contains(line), "missing \(line) in:\n\(out.stdout)")
    }
    XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.path + "/jobs"), "a dry run wrote files")
    XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.cache), "a dry run made the cache")
    // Too many shards: a note, still fine.
    let many = try CLI.run(["submit", "slurm", workflow, "--shards", "9", "--dry-run"], env: env, cwd: scratch.path)
    XCTAssertEqual(many.status, 0, many.stderr)
    XCTAssertTrue(many.stderr.contains("the workflow has 6 instances; shards 6...8 will be empty"), many.stderr)
    for (args, message) in [
      (["--shards", "0"], "--shards must be 1"), (["--shards", "2", "--time", "1\n#SBATCH --x"], "--time must be one"),
      (["--shards", "2", "--cpus-per-task", "0"], "--cpus-per-task must be at least 1"),
      (["--shards", "2", "--dir", "my jobs"], "#SBATCH --output cannot hold whitespace"),
    ] {
      let bad = try CLI.run(["submit", "slurm", workflow, "--dry-run"] + args, env: env, cwd: scratch.path)
      XCTAssertEqual(bad.status, 2, "\(args)")
      XCTAssertTrue(bad.stderr.contains(message), "\(args): \(bad.stderr)")
    }
  }

  /// `.ci/run` installs Slurm, munge and Chromium only when missing: with stand-ins for them on PATH it plans no
  /// apt-get at all; with none it names all three packages.
  func testCIInstallsOnlyWhatIsMissing() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().path
    let scratch = Scratch()
    let bin = scratch.path + "/bin"
    try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(
      atPath: bin + "/dirname", withDestinationPath: try XCTUnwrap(Self.tool("dirname")))
    func check() throws -> String {
      let process = Process()
      process.executableURL = URL(fileURLWithPath: "/bin/bash")
      process.arguments = [root + "/.ci/run", "--check-tools"]
      process.environment = ["PATH": bin]
      let pipe = Pipe()
      process.standardOutput = pipe
      try process.run()
      let data = pipe.fileHandleForReading.readDataToEndOfFile()
      process.waitUntilExit()
      XCTAssertEqual(process.terminationStatus, 0)
      return String(decoding: data, as: UTF8.self)
    }
    XCTAssertTrue(try check().contains("ci: apt: would install slurm-wlm munge chromium"))
    for tool in ["sbatch", "slurmctld", "slurmd", "munged", "chromium"] {
      FileManager.default.createFile(
        atPath: bin + "/" + tool, contents: Data("#!/bin/sh\n".utf8), attributes: [.posixPermissions: 0o755])
    }
    XCTAssertTrue(try check().contains("ci: apt: nothing to install\n"))
  }

  func testMissingSbatchIsAClearError() throws {
    let scratch = Scratch()
    let workflow = scratch.write("batch.yaml", ToyBatch.text)
    var env = CLI.environment(cache: scratch.cache)
    env["PATH"] = scratch.path + "/nothing-here"
    let out = try CLI.run(["submit", "slurm", workflow, "--shards", "2", "--dir", "jobs"], env: env, cwd: scratch.path)
    XCTAssertEqual(out.status, 1)
    XCTAssertTrue(out.stderr.contains("sbatch not found on PATH"), out.stderr)
    XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.cache))
    let status = try CLI.run(["status", "12"], env: env, cwd: scratch.path)
    XCTAssertEqual(status.status, 1)
    XCTAssertTrue(status.stderr.contains("neither sacct nor scontrol found"), status.stderr)
    XCTAssertEqual(try CLI.run(["status", "12x"], env: env, cwd: scratch.path).status, 2)
  }

  /// `status` on stand-in sacct/scontrol: task states from either, failed workflow nodes from the run records.
  func testStatusReadsSacctOrScontrolAndTheRunRecords() throws {
    let scratch = Scratch()
    let bin = scratch.path + "/bin"
    try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
    func stub(_ name: String, _ body: String) {
      FileManager.default.createFile(
        atPath: bin + "/" + name, contents: Data("#!/bin/sh\n\(body)\n".utf8), attributes: [.posixPermissions: 0o755])
    }
    // A shard that failed, with its run record in the cache.
    let workflow = scratch.write(
      "fail.yaml",
      """
      cogflow: 1
      name: failing
      matrix:
        seed: [1, 2]
      nodes:
        f: { type: toy.fail, with: { message: "boom ${seed}" } }
      """)
    let env = CLI.environment(
      cache: scratch.cache,
      extra: ["SLURM_ARRAY_JOB_ID": "123", "SLURM_ARRAY_TASK_ID": "1", "COGFLOW_SHARD_COUNT": "2"])
    let shard = try CLI.run(["run", workflow, "--shard", "auto", "--quiet"], env: env, cwd: scratch.path)
    XCTAssertEqual(shard.status, 1, shard.stderr)

    var plain = CLI.environment(cache: scratch.cache)
    plain["PATH"] = bin
    stub("sacct", "printf '123_0|COMPLETED|n1\\n123_1|FAILED|n2\\n123_[2-3]|PENDING|None assigned\\n124|RUNNING|n1\\n'")
    let fromSacct = try CLI.run(["status", "123"], env: plain, cwd: scratch.path)
    XCTAssertEqual(fromSacct.status, 0, fromSacct.stderr)
    let lines = fromSacct.stdout.split(separator: "\n").map(String.init)
    XCTAssertEqual(lines.first, "job 123: 4 shard tasks: 1 done, 0 running, 2 pending, 1 failed")
    XCTAssertTrue(lines.contains("  task 1: failed on n2"), fromSacct.stdout)
    XCTAssertTrue(lines.contains("  task 3: pending"), fromSacct.stdout)
    XCTAssertTrue(
      lines.contains { $0.hasPrefix("    failed node f[seed=") && $0.contains("(toy.fail) failed: boom") },
      fromSacct.stdout)
    XCTAssertTrue(fromSacct.stdout.contains("--only-failed"))

    // Accounting disabled: sacct fails, scontrol answers (pending tasks folded into one line).
    stub("sacct", "echo 'Slurm accounting storage is disabled' >&2; exit 1")
    stub(
      "scontrol",
      "echo 'JobId=124 ArrayJobId=123 ArrayTaskId=0 JobState=COMPLETED NodeList=n1'\n"
        + "echo 'JobId=123 ArrayJobId=123 ArrayTaskId=1-2 JobState=RUNNING NodeList=n2'")
    let fromScontrol = try CLI.run(["status", "123"], env: plain, cwd: scratch.path)
    XCTAssertEqual(fromScontrol.status, 0, fromScontrol.stderr)
    XCTAssertTrue(
      fromScontrol.stdout.hasPrefix("job 123: 3 shard tasks: 1 done, 2 running, 0 pending, 0 failed"),
      fromScontrol.stdout)
    // An unknown job: scontrol's own words, exit 1.
    stub("scontrol", "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1")
    let unknown = try CLI.run(["status", "999"], env: plain, cwd: scratch.path)
    XCTAssertEqual(unknown.status, 1)
    XCTAssertTrue(unknown.stderr.contains("Slurm knows no job 999 (scontrol: slurm_load_jobs error"), unknown.stderr)
  }

  /// The issue's CI test: a 3-shard array plus gather on a real (one-node) Slurm; then a shard killed with
  /// scancel mid-run and resubmitted with --only-failed, which recomputes nothing that finished.
  func testRealSlurmArrayGatherKillAndResume() throws {
    guard Self.slurmUp else {
      throw XCTSkip(
        "no idle Slurm node: run `bash scripts/slurm-up.sh` as root (apt-get install slurm-wlm munge) first")
    }
    let scratch = Scratch()
    let workflow = scratch.write("batch.yaml", ToyBatch.text)
    let log = scratch.path + "/computed.log"
    let env = CLI.environment(cache: scratch.cache)
    let common = ["--shards", "3", "--cpus-per-task", "1", "--mem", "256M", "--dir", "jobs", "--set", "log=\(log)"]

    // Slurm refuses a partition it does not have: a clear error, nothing submitted, nothing cached.
    let refused = try CLI.run(
      ["submit", "slurm", workflow, "--partition", "no-such-partition"] + common, env: env, cwd: scratch.path)
    XCTAssertEqual(refused.status, 1)
    XCTAssertTrue(refused.stderr.contains("Slurm refused the shard array"), refused.stderr)
    XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.cache))

    let submit = try CLI.run(["submit", "slurm", workflow, "--set", "ms=300"] + common, env: env, cwd: scratch.path)
    XCTAssertEqual(submit.status, 0, submit.stderr)
    let ids = try XCTUnwrap(Self.jobIDs(submit.stdout), submit.stdout)
    XCTAssertTrue(
      Self.waitForJobs([ids.array, ids.gather]), "jobs did not finish; squeue: \(Self.slurm("squeue", []))")
    let lines = scratch.lines("computed.log")
    XCTAssertEqual(lines.count, 8, "every instance exactly once: \(lines)")
    XCTAssertEqual(Set(lines).count, 8, "a computation ran twice: \(lines)")
    let status = try CLI.run(["status", ids.array], env: env, cwd: scratch.path)
    XCTAssertEqual(status.status, 0, status.stderr)
    XCTAssertTrue(
      status.stdout.hasPrefix("job \(ids.array): 3 shard tasks: 3 done, 0 running, 0 pending, 0 failed"), status.stdout)

    // Byte for byte what one machine computes.
    let single = scratch.path + "/single"
    let one = try CLI.run(
      ["run", workflow, "--quiet", "--cache", single, "--set", "log=\(log)", "--set", "ms=300"], env: env,
      cwd: scratch.path)
    XCTAssertEqual(one.status, 0, one.stderr)
    XCTAssertEqual(ToyBatch.objects(scratch.cache), ToyBatch.objects(single))
    XCTAssertEqual(ToyBatch.keys(scratch.cache), ToyBatch.keys(single))
    // The gather job's report lists every image.
    let html = scratch.read("jobs/report-toy-batch/index.html")
    XCTAssertEqual(html.components(separatedBy: "<img class=\"thumb\"").count - 1, 6, html)
    XCTAssertTrue(html.contains("data-images=\"6\""))

    // Kill and resume: new keys (tag), slower images. Shard 1's image nodes, from a quick cacheless dry pass.
    let resumeLog = scratch.path + "/resume.log"
    let args = ["--set", "tag=resume", "--set", "log=\(resumeLog)"]
    let events = try CLI.run(
      ["run", workflow, "--shard", "1/3", "--no-cache", "--quiet", "--events", "-", "--set", "tag=resume"], env: env,
      cwd: scratch.path)
    let shard1 = Set(
      jsonObjects(events.stdout).filter { $0["event"] as? String == "node-done" }.compactMap { $0["node"] as? String }
        .filter { $0.hasPrefix("img[") })
    XCTAssertEqual(shard1.count, 2)
    let second = try CLI.run(
      ["submit", "slurm", workflow, "--set", "ms=2500"] + common.dropLast(2) + args, env: env, cwd: scratch.path)
    XCTAssertEqual(second.status, 0, second.stderr)
    let ids2 = try XCTUnwrap(Self.jobIDs(second.stdout), second.stdout)
    // Cancel shard 1 once its first image is done (its second is then under way).
    XCTAssertTrue(
      CLI.waitFor(timeout: 120) {
        scratch.lines("resume.log").contains { line in shard1.contains { line.hasPrefix($0 + " ") } }
      }, "shard 1 never finished an image")
    Self.slurm("scancel", ["\(ids2.array)_1"])
    XCTAssertTrue(Self.waitForJobs([ids2.array]), "the array did not end")
    // The gather job can never start now (afterok failed): take it away.
    Self.slurm("scancel", [ids2.gather])
    let afterKill = try CLI.run(["status", ids2.array], env: env, cwd: scratch.path)
    XCTAssertTrue(afterKill.stdout.contains("2 done, 0 running, 0 pending, 1 failed"), afterKill.stdout)
    XCTAssertTrue(afterKill.stdout.contains("task 1: cancelled"), afterKill.stdout)
    XCTAssertTrue(afterKill.stdout.contains("--only-failed"), afterKill.stdout)
    let beforeResume = scratch.lines("resume.log")

    let resume = try CLI.run(
      ["submit", "slurm", workflow, "--set", "ms=2500", "--only-failed"] + common.dropLast(2) + args, env: env,
      cwd: scratch.path)
    XCTAssertEqual(resume.status, 0, resume.stderr)
    XCTAssertTrue(resume.stdout.contains("1 of 3 shards (tasks 1)"), resume.stdout)
    let ids3 = try XCTUnwrap(Self.jobIDs(resume.stdout), resume.stdout)
    XCTAssertTrue(Self.waitForJobs([ids3.array, ids3.gather]), "the resubmitted shard did not finish")
    let after = scratch.lines("resume.log")
    XCTAssertEqual(Set(after).count, after.count, "something finished was computed again: \(after)")
    XCTAssertEqual(after.count, 8, "\(after)")
    XCTAssertEqual(after.count - beforeResume.count, 1, "only the interrupted image is computed: \(after)")
    let done = try CLI.run(
      ["submit", "slurm", workflow, "--set", "ms=2500", "--only-failed"] + common.dropLast(2) + args, env: env,
      cwd: scratch.path)
    XCTAssertTrue(done.stdout.contains("every shard of toy-batch is complete"), done.stdout)
    let final = scratch.read("jobs/report-toy-batch/index.html")
    XCTAssertTrue(final.contains("data-images=\"6\"") && final.contains("data-failed=\"0\""), final)
  }
}
