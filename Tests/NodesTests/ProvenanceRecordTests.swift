import Foundation
import ModelIO
import Workflow
import XCTest

@testable import Nodes

/// The provenance record: what it collects from a node's context, its JSON (sorted keys, stable bytes), the PNG
/// chunks it becomes, and the errors of reading a damaged or foreign one.
final class ProvenanceRecordTests: XCTestCase {
  var root: URL!

  override func setUp() {
    root = FileManager.default.temporaryDirectory.appendingPathComponent("cogflow-prov-\(UUID().uuidString)")
  }

  override func tearDown() { try? FileManager.default.removeItem(at: root) }

  func write(_ relative: String, _ text: String) throws -> String {
    let url = root.appendingPathComponent(relative)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try text.write(to: url, atomically: true, encoding: .utf8)
    return url.path
  }

  /// A context as the engine gives save-image: top file with includes below, beside and above its folder.
  func context() throws -> NodeContext {
    let top = try write(
      "work/flows/main.yaml", "cogflow: 1\nname: demo\ninclude: [parts/a.yaml, ../shared/b.yaml]\nnodes: {}\n")
    _ = try write("work/flows/parts/a.yaml", "cogflow: 1\ninclude: ../../shared/b.yaml\nparams: { seed: 1 }\n")
    _ = try write("work/shared/b.yaml", "cogflow: 1\ninclude: c.yaml\n")
    _ = try write("work/shared/c.yaml", "cogflow: 1\n")
    var p = Provenance()
    p.workflowName = "demo"
    p.workflowFile = top
    p.workflowSource = try String(contentsOfFile: top, encoding: .utf8)
    p.overrides = ["seed=3", "base.cfg=5.5"]
    p.params = ["seed": .int(3), "cfg": .float(7.5), "prompt": .string("a \"lighthouse\""), "sizes": .list([.int(1)])]
    p.nodeKeys = ["base": "k-base", "text": "k-text"]
    p.models = ["t5": ProvenanceModel(path: "/models/t5-v1_1-xxl", digest: String(repeating: "a", count: 64))]
    let frozen = p
    return NodeContext(
      node: "save", type: "save-image", key: "k-save", cancellation: CancellationToken(), provenance: frozen)
  }

  func testRecordCollectsSourcesKeysAndModels() throws {
    let record = try ProvenanceRecord(context: try context())
    XCTAssertEqual(record.format, ProvenanceRecord.currentFormat)
    XCTAssertEqual(record.workflow.name, "demo")
    XCTAssertEqual(
      record.workflow.sources.map(\.path), ["main.yaml", "parts/a.yaml", "../shared/b.yaml", "../shared/c.yaml"])
    XCTAssertEqual(record.workflow.sources[2].text, "cogflow: 1\ninclude: c.yaml\n")
    XCTAssertEqual(record.overrides, ["seed=3", "base.cfg=5.5"])
    XCTAssertEqual(record.params["cfg"], .float(7.5))
    XCTAssertEqual(record.node, ProvenanceRecord.Node(id: "save", type: "save-image", key: "k-save"))
    XCTAssertEqual(record.ancestors, ["base": "k-base", "text": "k-text"])
    XCTAssertEqual(record.models["t5"]?.path, "/models/t5-v1_1-xxl")
  }

  func testJSONIsSortedStableAndRoundTrips() throws {
    let record = try ProvenanceRecord(context: try context())
    let json = try record.json()
    XCTAssertEqual(json, try ProvenanceRecord(context: try context()).json())
    let text = String(decoding: json, as: UTF8.self)
    // Sorted keys at the top level, no escaped slashes in paths.
    let order = ["\"ancestors\"", "\"cogflow\"", "\"engine\"", "\"format\"", "\"models\"", "\"node\"", "\"overrides\""]
    let positions = order.compactMap { text.range(of: $0)?.lowerBound }
    XCTAssertEqual(positions.count, order.count, text)
    XCTAssertEqual(positions, positions.sorted(), text)
    XCTAssertTrue(text.contains("/models/t5-v1_1-xxl"), text)
    XCTAssertEqual(try ProvenanceRecord.decode(text, source: "test"), record)
  }

  func testChunksSurviveAPNGRoundTrip() throws {
    let record = try ProvenanceRecord(context: try context())
    let image = try PNGImage(
      width: 2, height: 1, channels: 3, samples: [1, 2, 3, 4, 5, 6], text: try record.chunks())
    let path = root.appendingPathComponent("out.png").path
    try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    try image.write(to: path)
    XCTAssertEqual(try ProvenanceRecord.read(png: path), record)
    let decoded = try PNGImage.read(path: path)
    XCTAssertEqual(decoded.text("Software"), "CogFlow \(ProvenanceRecord.cogflowVersion) (\(Provenance.engineVersion))")
    XCTAssertEqual(decoded.text.first { $0.keyword == ProvenanceRecord.keyword }?.international, true)
  }

  func testReadingErrorsNameTheFileAndTheProblem() throws {
    try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    let plain = root.appendingPathComponent("plain.png").path
    try PNGImage(width: 1, height: 1, channels: 3, samples: [0, 0, 0]).write(to: plain)
    XCTAssertThrowsError(try ProvenanceRecord.read(png: plain)) { error in
      XCTAssertTrue("\(error)".contains(plain), "\(error)")
      XCTAssertTrue("\(error)".contains("no 'cogflow:provenance' text chunk"), "\(error)")
    }
    XCTAssertThrowsError(try ProvenanceRecord.decode("{\"format\": ", source: "x.png")) { error in
      XCTAssertTrue("\(error)".hasPrefix("x.png: the provenance record is not a JSON object"), "\(error)")
    }
    let good = String(decoding: try ProvenanceRecord(context: try context()).json(), as: UTF8.self)
    let noNode = good.replacingOccurrences(of: "\"node\":", with: "\"nodes\":")
    XCTAssertThrowsError(try ProvenanceRecord.decode(noNode, source: "x.png")) { error in
      XCTAssertTrue("\(error)".contains("lacks field 'node'"), "\(error)")
    }
    let future = good.replacingOccurrences(of: ProvenanceRecord.currentFormat, with: "cogflow-provenance-9")
    XCTAssertThrowsError(try ProvenanceRecord.decode(future, source: "x.png")) { error in
      XCTAssertTrue("\(error)".contains("has format 'cogflow-provenance-9'"), "\(error)")
    }
  }

  func testUnreadableIncludeIsReported() throws {
    let top = try write("w/top.yaml", "cogflow: 1\ninclude: gone.yaml\n")
    var p = Provenance()
    p.workflowFile = top
    p.workflowSource = try String(contentsOfFile: top, encoding: .utf8)
    let frozen = p
    let context = NodeContext(
      node: "s", type: "save-image", key: "k", cancellation: CancellationToken(), provenance: frozen)
    XCTAssertThrowsError(try ProvenanceRecord(context: context)) { error in
      XCTAssertTrue("\(error)".contains("gone.yaml"), "\(error)")
    }
  }

  func testRelativePaths() {
    XCTAssertEqual(ProvenanceRecord.relativePath("/a/b/c.yaml", from: "/a/b"), "c.yaml")
    XCTAssertEqual(ProvenanceRecord.relativePath("/a/x/c.yaml", from: "/a/b"), "../x/c.yaml")
    XCTAssertEqual(ProvenanceRecord.relativePath("/z.yaml", from: "/a/b"), "../../z.yaml")
  }

  func testNonFiniteFloatsBecomeStrings() throws {
    XCTAssertEqual(ParamValue(.float(.infinity)), .string("Infinity"))
    XCTAssertEqual(ParamValue(.float(.nan)), .string("NaN"))
    XCTAssertEqual(ParamValue(.list([.bool(true), .null])), .list([.bool(true), .null]))
  }
}
