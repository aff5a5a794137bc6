import ArgumentParser
import Foundation
import ModelIO
import Nodes
import Workflow

/// `cogflow reproduce IMAGE.png`: rebuilds the workflow recorded in a PNG in a private folder, checks the models,
/// runs it (fully cached when nothing changed) and compares the new PNG with the original.
struct ReproduceCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "reproduce",
    abstract: "Run the workflow recorded in a CogFlow PNG again and compare the result with it.",
    discussion: """
      The record (`cogflow inspect IMAGE.png` shows it) holds the workflow files, the --set overrides, the node \
      keys and the models' paths and digests. The workflow is rebuilt in a private temporary folder, so the \
      original files need not exist; every model is checked against its recorded digest before anything runs. \
      With nothing changed every node but save-image comes from the cache and the PNG is the original, byte for \
      byte. Without --models, models are looked for where the image was made.
      Exit status: 0 reproduced (same pixels), 1 a node failed, 2 the record cannot be used (no record, a model \
      missing or changed, the workflow does not validate), 3 the pixels differ, 130 cancelled.
      """)

  @Argument(help: "A PNG written by CogFlow's save-image.") var image: String
  @Option(help: "Folder that holds the models (default: the folder they were read from when the image was made).")
  var models: String?
  @Option(help: "Where to write the new PNG (default: IMAGE with .reproduced.png beside it).") var out: String?
  @OptionGroup var cacheOptions: WorkflowCacheOptions
  @Flag(help: "No progress display on stderr.") var quiet = false

  func fail(_ message: String, _ status: Int32 = 2) -> ExitCode {
    WorkflowCLI.printError("error: \(message)")
    return ExitCode(status)
  }

  func run() throws {
    let cwd = FileManager.default.currentDirectoryPath
    func absolute(_ p: String) -> String {
      URL(fileURLWithPath: p, relativeTo: URL(fileURLWithPath: cwd, isDirectory: true)).standardizedFileURL.path
    }
    let imagePath = absolute(image)
    let outPath = absolute(
      out ?? (imagePath.hasSuffix(".png") ? String(imagePath.dropLast(4)) : imagePath) + ".reproduced.png")
    let record: ProvenanceRecord
    do { record = try ProvenanceRecord.read(png: imagePath) } catch { throw fail("\(error)") }

    var template = FileManager.default.temporaryDirectory.appendingPathComponent("cogflow-reproduce-XXXXXX").path
      .utf8CString
    let made = template.withUnsafeMutableBufferPointer { buffer -> UnsafeMutablePointer<CChar>? in
      guard let base = buffer.baseAddress else { return nil }
      return mkdtemp(base)
    }
    guard let made else {
      throw fail("cannot make a private temporary folder: \(String(cString: strerror(errno)))", 1)
    }
    let scratch = String(cString: made)
    defer { try? FileManager.default.removeItem(atPath: scratch) }

    // 1. The workflow files, rebuilt from the record; 2. where the models are; 3. they exist and are unchanged.
    let top: String
    let modelsDirectory: String?
    do {
      top = try record.materialize(in: scratch + "/workflow")
      modelsDirectory = try models.map(absolute) ?? record.modelsDirectory(topFile: top)
    } catch { throw fail("\(error)") }
    let hint = "pass --models DIR naming the folder that holds the models the image was made with"
    for (name, path) in record.modelPaths(topFile: top, modelsDirectory: modelsDirectory).sorted(by: { $0.key < $1.key }
    )
    where !FileManager.default.fileExists(atPath: path) {
      throw fail(
        "model '\(name)' not found at \(path) (the image was made with \(record.models[name]?.path ?? "?")); \(hint)")
    }
    let cache = try cacheOptions.open()
    let runner: WorkflowRunner
    do {
      runner = try WorkflowRunner(
        path: top, overrides: record.overrides, modelsDirectory: modelsDirectory, targets: [record.node.id],
        cache: cache)
    } catch let WorkflowError.invalid(diagnostics) {
      for diagnostic in diagnostics { WorkflowCLI.printError(diagnostic.description) }
      throw fail("the recorded workflow does not validate here (rebuilt in a temporary folder); \(hint)")
    } catch { throw fail("\(error)") }
    let changed: [String]
    do { changed = try record.changedModels(in: runner.workflow, fileDigest: { try cache.fileDigest($0) }) } catch {
      throw fail("\(error)")
    }
    if !changed.isEmpty {
      for line in changed.dropLast() { WorkflowCLI.printError("error: \(line)") }
      throw fail("\(changed.last ?? ""); \(hint)")
    }

    // 4. Run in the private folder: save-image writes its (relative) path there.
    if let node = runner.workflow.node(record.node.id), case .string(let path)? = node.params["path"],
      path.hasPrefix("/")
    {
      throw fail(
        "node '\(record.node.id)' saves to an absolute path (\(path)); reproduce only runs workflows that save to relative paths, so it never overwrites a file"
      )
    }
    let runFolder = scratch + "/run"
    try FileManager.default.createDirectory(atPath: runFolder, withIntermediateDirectories: true)
    guard FileManager.default.changeCurrentDirectoryPath(runFolder) else {
      throw fail("cannot enter \(runFolder)", 1)
    }
    defer { _ = FileManager.default.changeCurrentDirectoryPath(cwd) }
    var options = EngineOptions()
    let signals = WorkflowSignals(token: options.cancellation)
    defer { signals.restore() }
    options.useCache = true
    let display = quiet ? nil : ProgressDisplay(handle: .standardError)
    let result = runner.run(options: options) { event in display?.handle(event) }
    if result.cancelled { throw fail("cancelled: finished nodes are cached", 130) }
    if !result.errors.isEmpty {
      for error in result.errors { WorkflowCLI.printError("error: \(error)") }
      throw ExitCode(1)
    }

    // 5. The one PNG the save node wrote, copied out and compared.
    let written = (FileManager.default.enumerator(atPath: runFolder)?.allObjects as? [String] ?? [])
      .filter { $0.hasSuffix(".png") }
    guard written.count == 1, let produced = FileManager.default.contents(atPath: runFolder + "/" + written[0]) else {
      throw fail("the run wrote \(written.count) PNG files, expected the one of node '\(record.node.id)'", 1)
    }
    do { try produced.write(to: URL(fileURLWithPath: outPath), options: Data.WritingOptions.atomic) } catch {
      throw fail("cannot write \(outPath): \(error)", 1)
    }
    let ran = result.count(.ran)
    print("reproduce: \(result.count(.cached)) node(s) from the cache, \(ran) ran; wrote \(outPath)")
    guard let original = FileManager.default.contents(atPath: imagePath) else {
      throw fail("cannot read \(imagePath)", 1)
    }
    if original == produced {
      print("identical to \(imagePath), byte for byte")
      return
    }
    let a = try PNGImage.decode(original, name: imagePath)
    let b = try PNGImage.decode(produced, name: outPath)
    if a.width == b.width && a.height == b.height && a.channels == b.channels && a.samples == b.samples {
      print(
        "same pixels as \(imagePath); the embedded text differs (the record names what differs: models' paths, CogFlow version)"
      )
      return
    }
    let differing = zip(a.samples, b.samples).filter { $0 != $1 }.count
    print(
      a.samples.count == b.samples.count
        ? "pixels differ from \(imagePath): \(differing) of \(a.samples.count) samples"
        : "pixels differ from \(imagePath): \(a.width)x\(a.height)x\(a.channels) vs \(b.width)x\(b.height)x\(b.channels)"
    )
    throw ExitCode(3)
  }
}
