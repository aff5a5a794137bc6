import Foundation
import XCTest

/// `cogflow submit k8s`: the manifests, validated offline against the Kubernetes schema. This test runs Python:
/// Tests/tools/k8s_validate.py wraps the pinned kubernetes-validate (no cluster needed). Without it, it skips.
final class K8sCLITests: XCTestCase {
  override func setUp() {
    XCTAssertTrue(FileManager.default.isExecutableFile(atPath: CLI.binary), "build cogflow first: \(CLI.binary)")
  }

  static let validator = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("tools/k8s_validate.py").path

  /// Exit status and output of the validator on `files`.
  static func validate(_ files: [String], cwd: String) throws -> (Int32, String) {
    guard let python = SlurmCLITests.tool("python3") else {
      throw XCTSkip("python3 not found: the Kubernetes schema check needs python3 and kubernetes-validate")
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = [validator] + files
    let out = cwd + "/validate-\(UUID().uuidString).out"
    _ = FileManager.default.createFile(atPath: out, contents: nil)
    process.standardOutput = FileHandle(forWritingAtPath: out)
    process.standardError = FileHandle(forWritingAtPath: out)
    try process.run()
    process.waitUntilExit()
    let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
    if process.terminationStatus == 3 {
      throw XCTSkip("kubernetes-validate is not installed: pip install -r Tests/tools/k8s_requirements.txt (\(text))")
    }
    return (process.terminationStatus, text)
  }

  func testManifestsValidateAgainstTheKubernetesSchema() throws {
    let scratch = Scratch()
    let workflow = scratch.write("batch.yaml", ToyBatch.text)
    let env = CLI.environment(cache: scratch.cache)
    let out = try CLI.run(
      [
        "submit", "k8s", workflow, "--shards", "3", "--image", "registry.example/cogflow:0.1", "--cache-pvc",
        "cogflow-cache",
        "--models-pvc", "cogview3-models", "--namespace", "batch", "--parallelism", "2", "--set", "tag=\"quoted\"",
        "--out", "k8s",
      ], env: env, cwd: scratch.path)
    XCTAssertEqual(out.status, 0, out.stderr)
    let shards = scratch.read("k8s/shards.yaml")
    for line in [
      "completionMode: \"Indexed\"", "completions: 3", "parallelism: 2", "backoffLimitPerIndex: 1",
      "claimName: \"cogflow-cache\"", "name: \"COGFLOW_SHARD_COUNT\"", "- \"--shard\"\n        - \"auto\"",
      "- \"tag=\\\"quoted\\\"\"", "kind: \"ConfigMap\"",
    ] {
      XCTAssertTrue(shards.contains(line), "missing \(line) in:\n\(shards)")
    }
    XCTAssertTrue(scratch.read("k8s/gather.yaml").contains("- \"report\""))
    // Stdout without --out: the same documents.
    let printed = try CLI.run(
      ["submit", "k8s", workflow, "--shards", "3", "--image", "i", "--cache-pvc", "c"], env: env, cwd: scratch.path)
    XCTAssertEqual(printed.status, 0, printed.stderr)
    scratch.write("printed.yaml", printed.stdout)

    let (status, text) = try Self.validate(
      [scratch.path + "/k8s/shards.yaml", scratch.path + "/k8s/gather.yaml", scratch.path + "/printed.yaml"],
      cwd: scratch.path)
    XCTAssertEqual(status, 0, text)
    XCTAssertEqual(text.components(separatedBy: " passed for resource ").count - 1, 2 + 1 + 3, text)

    // The validator is not vacuous: an unknown field and a wrong type are rejected.
    scratch.write("broken.yaml", shards.replacingOccurrences(of: "completions: 3", with: "completions: \"three\""))
    scratch.write(
      "broken-gather.yaml",
      scratch.read("k8s/gather.yaml").replacingOccurrences(
        of: "restartPolicy: \"Never\"", with: "restartPolicy: \"Never\"\n      restartTwice: true"))
    let (bad, badText) = try Self.validate(
      [scratch.path + "/broken.yaml", scratch.path + "/broken-gather.yaml"], cwd: scratch.path)
    XCTAssertEqual(bad, 1, badText)
    XCTAssertTrue(badText.contains("spec.completions: 'three' is not of type 'integer'"), badText)
    XCTAssertTrue(badText.contains("'restartTwice' was unexpected"), badText)
  }

  func testBadArguments() throws {
    let scratch = Scratch()
    let workflow = scratch.write("batch.yaml", ToyBatch.text)
    let env = CLI.environment(cache: scratch.cache)
    for (args, message) in [
      (["--shards", "0", "--image", "i", "--cache-pvc", "c"], "--shards must be 1"),
      (["--shards", "2", "--image", "", "--cache-pvc", "c"], "--image must be one non-empty line"),
      (
        ["--shards", "2", "--image", "i", "--cache-pvc", "c", "--parallelism", "0"], "--parallelism must be at least 1"
      ),
    ] {
      let out = try CLI.run(["submit", "k8s", workflow] + args, env: env, cwd: scratch.path)
      XCTAssertEqual(out.status, 2, "\(args)")
      XCTAssertTrue(out.stderr.contains(message), "\(args): \(out.stderr)")
    }
    let missing = try CLI.run(
      ["submit", "k8s", "nope.yaml", "--shards", "2", "--image", "i", "--cache-pvc", "c"], env: env, cwd: scratch.path)
    XCTAssertEqual(missing.status, 2)
    let big = scratch.write("big.yaml", ToyBatch.text + "\n# " + String(repeating: "x", count: 950_000) + "\n")
    let tooBig = try CLI.run(
      ["submit", "k8s", big, "--shards", "2", "--image", "i", "--cache-pvc", "c"], env: env, cwd: scratch.path)
    XCTAssertEqual(tooBig.status, 2)
    XCTAssertTrue(tooBig.stderr.contains("too big for a ConfigMap"), tooBig.stderr)
  }
}
