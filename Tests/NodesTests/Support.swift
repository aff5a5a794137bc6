import Foundation
import Tensor
import XCTest

@testable import Nodes
@testable import Workflow

/// Paths and helpers shared by the node tests.
enum Paths {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
  static let workflows = root.appendingPathComponent("Workflows")
  static let tiny = root.appendingPathComponent("Tests/Fixtures/tiny-cogview3")

  static func workflow(_ name: String) -> String { workflows.appendingPathComponent(name).path }

  /// The tiny model set (Tests/Fixtures/tiny-cogview3), or a skip saying why the test cannot run.
  static func tinyModels() throws -> String {
    guard FileManager.default.fileExists(atPath: tiny.appendingPathComponent("cogview3-base/latest").path) else {
      throw XCTSkip(
        "the tiny model set Tests/Fixtures/tiny-cogview3 is not present (made by Tests/tools/make_tiny_cogview3.py)")
    }
    return tiny.path
  }

  /// A fresh temporary folder, removed at the end of the test.
  static func temporaryFolder(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("cogflow-nodes-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
  }
}

/// A list that any thread may append to: engine events, node log lines.
final class LockedList<Element>: @unchecked Sendable {
  private let lock = NSLock()
  private var items: [Element] = []

  func append(_ item: Element) {
    lock.lock()
    items.append(item)
    lock.unlock()
  }

  var all: [Element] {
    lock.lock()
    defer { lock.unlock() }
    return items
  }
}

typealias EventLog = LockedList<EngineEvent>

extension RunResult {
  /// Node ids with outcome `outcome`, sorted.
  func nodes(_ outcome: NodeOutcome) -> [String] { outcomes.filter { $0.value == outcome }.map(\.key).sorted() }
}

/// Runs one node type directly, its parameters' defaults filled in, with models from the tiny set.
enum NodeHarness {
  static let vae = "cogview3-base-3b-vae/sdxl_vae.safetensors"

  static func model(_ relative: String) throws -> ResolvedModel {
    let path = try Paths.tinyModels() + "/" + relative
    return ResolvedModel(name: relative, path: path, files: [path])
  }

  static func run(
    _ type: any NodeType, _ inputs: [String: Artifact] = [:], _ values: [String: Value] = [:],
    model: String? = nil, files: [String: String] = [:], cancellation: CancellationToken = CancellationToken()
  ) throws -> [String: Artifact] {
    var params: [String: Value] = [:]
    for spec in type.spec.params { params[spec.name] = spec.defaultValue }
    params.merge(values) { $1 }
    let models = try model.map { ["model": try Self.model($0)] } ?? [:]
    let context = NodeContext(node: "n", type: type.spec.name, key: "k", cancellation: cancellation)
    return try type.run(
      inputs: NodeInputs(inputs, node: "n"), params: NodeParams(params, models: models, files: files),
      context: context)
  }

  /// The text context of `prompt` from the tiny T5.
  static func cond(_ prompt: String = "a red fox") throws -> Artifact {
    let out = try run(
      TextEncodeNode(pool: ModelPool()), ["text": Artifact(text: prompt)], model: "t5-v1_1-xxl")
    return try XCTUnwrap(out["cond"])
  }

  /// Draw `draw` (1-based) of `torch.manual_seed(seed); torch.randn(shape)`, as a latent artifact.
  static func noise(seed: UInt64, shape: [Int], draw: Int = 1) throws -> Artifact {
    var g = TorchGenerator(seed: seed)
    var t = g.randn(shape)
    for _ in 1..<draw { t = g.randn(shape) }
    return try Artifacts.encodeLatent(t)
  }
}
