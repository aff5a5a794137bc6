// cogflow-embed-example: CogFlow used as a library, not through the CLI.
//
//   swift run cogflow-embed-example Workflows/relay-1024.yaml Tests/Fixtures/tiny-cogview3 /tmp/embed-out
//
// Loads a workflow, overrides its seed and size, runs it with a progress callback, then reads back the final
// image artifact from the cache, the PNG that save-image wrote and the provenance record inside that PNG.
import Foundation
import ModelIO
import Nodes
import Tensor
import Workflow

let arguments = CommandLine.arguments
guard arguments.count == 4 else {
  FileHandle.standardError.write(Data("usage: cogflow-embed-example WORKFLOW.yaml MODELS_DIR OUT_DIR\n".utf8))
  exit(2)
}
let (workflowPath, modelsDirectory, outDirectory) = (arguments[1], arguments[2], arguments[3])

do {
  // A cache of our own (any folder; the CLI's default is ~/.cache/cogflow), and the overrides a user would
  // give with --set.
  let cache = try DiskCache(root: URL(fileURLWithPath: outDirectory).appendingPathComponent("cache"))
  let runner = try WorkflowRunner(
    path: workflowPath,
    overrides: ["seed=7", "size=64", "base_steps=4", "output=\(outDirectory)/embed-{seed}.png"],
    modelsDirectory: modelsDirectory, cache: cache)

  // The engine reports every event; progress events come once per sampler step.
  let result = runner.run { event in
    switch event.kind {
    case .progress:
      if let node = event.node, let step = event.step, let total = event.total {
        print("progress \(node) \(step)/\(total)")
      }
    case .nodeDone, .nodeCached:
      print("\(event.kind == .nodeCached ? "cached" : "done") \(event.node ?? "?")")
    default: break
    }
  }
  guard result.succeeded else {
    for error in result.errors { FileHandle.standardError.write(Data("error: \(error)\n".utf8)) }
    exit(1)
  }

  // The decoded image (float [1, 3, H, W] in [0, 1]) as the `image` node produced it.
  let image = try Artifacts.decodeImage(try runner.output("image", port: "image", of: result))
  print("image tensor \(image.shape)")

  // The PNG on disk and the provenance record save-image embedded in it.
  let pngPath = "\(outDirectory)/embed-7.png"
  let png = try PNGImage.read(path: pngPath)
  print("png \(png.width)x\(png.height) channels \(png.channels)")
  let record = try ProvenanceRecord.read(png: pngPath)
  print("provenance workflow \(record.workflow.name) node \(record.node.id) overrides \(record.overrides)")
  print("provenance models \(record.models.keys.sorted().joined(separator: ","))")
} catch {
  FileHandle.standardError.write(Data("error: \(error)\n".utf8))
  exit(1)
}
