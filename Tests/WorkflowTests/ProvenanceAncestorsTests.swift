import Foundation
import XCTest

@testable import Workflow

/// The provenance a node sees names its ancestors only (fixed by the graph, so saved PNG bytes do not depend on
/// which other branches happened to run first) and the models read on the way there.
final class ProvenanceAncestorsTests: XCTestCase {
  final class Box: @unchecked Sendable {
    var provenance: Provenance?
  }

  func testOnlyAncestorsAndTheirModels() throws {
    let dir = TempDir()
    dir.write("m.bin", "weights")
    dir.write("other.bin", "other weights")
    let box = Box()
    let probe = ClosureNodeType(
      NodeTypeSpec(
        name: "probe", version: 1, inputs: [PortSpec("a", "int")], outputs: [],
        params: [ParamSpec("model", .model)], resource: .io, cachePolicy: .alwaysRun)
    ) { _, _, context in
      box.provenance = context.provenance
      return [:]
    }
    var registry = toyRegistry
    registry.register(probe)
    // `side` and `unused` finish long before `probe` starts (the slow chain holds it back), so a record of
    // "keys known so far" would name them; an ancestors-only record does not.
    let path = dir.write(
      "p.yaml",
      """
      cogflow: 1
      name: prov
      models: { m: m.bin, other: other.bin }
      nodes:
        weights: { type: toy.model, with: { model: m } }
        slow: { type: toy.slow, in: { a: weights.out }, with: { steps: 3, ms: 40 } }
        side: { type: toy.add, with: { value: 5 } }
        unused: { type: toy.model, with: { model: other } }
        p: { type: probe, in: { a: slow.out }, with: { model: m } }
      """)
    let wf = try WorkflowResolver.load(path: path, registry: registry)
    var options = EngineOptions()
    options.useCache = false
    options.jobs = 4
    let result = Engine(workflow: wf, registry: registry, cache: nil, options: options).run()
    XCTAssertTrue(result.succeeded, "\(result.errors)")
    let p = try XCTUnwrap(box.provenance)
    XCTAssertEqual(p.nodeKeys, result.keys.filter { ["weights", "slow"].contains($0.key) })
    XCTAssertEqual(p.nodeKeys.count, 2)
    XCTAssertEqual(Set(p.models.keys), ["m"])
    XCTAssertEqual(p.models["m"]?.path, dir.url.appendingPathComponent("m.bin").standardizedFileURL.path)
    // The digest is the one the keys hold for the model.
    XCTAssertEqual(p.models["m"]?.digest, p.fileDigests["model"])
    XCTAssertEqual(p.models["m"]?.digest.count, 64)
  }

  /// A node that never asks for its provenance does not pay for the ancestor walk: the closure is lazy.
  func testProvenanceIsBuiltOnFirstUseOnly() {
    final class Counter: @unchecked Sendable { var n = 0 }
    let counter = Counter()
    let context = NodeContext(
      node: "n", type: "t", key: "k", cancellation: CancellationToken(),
      provenance: {
        counter.n += 1
        return Provenance()
      }())
    XCTAssertEqual(counter.n, 0)
    _ = context.provenance
    _ = context.provenance
    XCTAssertEqual(counter.n, 1)
  }
}
