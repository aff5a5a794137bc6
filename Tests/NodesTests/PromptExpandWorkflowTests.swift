import Foundation
import XCTest

@testable import Nodes
@testable import Workflow

/// Workflows/relay-1024-expanded.yaml end to end on the tiny model set with the loopback chat server:
/// the expansion feeds T5, a rerun asks nothing, and `expand=off` encodes the prompt as written.
final class PromptExpandWorkflowTests: XCTestCase {
  func testExpandedWorkflowRunsCachesAndSwitchesOff() throws {
    let models = try Paths.tinyModels()
    let server = try LLMTestServer(["default": ["kind": "ok", "content": "A detailed {prompt}, oil painting."]])
    let dir = try Paths.temporaryFolder(self)
    let cache = try DiskCache(root: dir.appendingPathComponent("cache"))
    func runner(_ extra: [String]) throws -> WorkflowRunner {
      try WorkflowRunner(
        path: Paths.workflow("relay-1024-expanded.yaml"),
        overrides: WorkflowsTests.small + [
          "output=\(dir.path)/out/{name}-{seed}.png", "prompt=a red fox", "expand.base-url=\(server.baseURL)",
          "expand.model=test-model",
        ] + extra, modelsDirectory: models, cache: cache)
    }
    let first = try runner([])
    let result = first.run()
    XCTAssertTrue(result.succeeded, "\(result.errors)")
    XCTAssertEqual(try first.output("expand", port: "text", of: result).text, "A detailed a red fox, oil painting.")
    XCTAssertEqual(server.requests.count, 1)

    let again = try runner(["expand.read-timeout=5"]).run()
    XCTAssertEqual(again.outcomes["expand"], .cached, "a rerun never calls the server")
    XCTAssertEqual(again.nodes(.ran), ["save"])
    XCTAssertEqual(server.requests.count, 1)

    let off = try runner(["expand=off"])
    let plain = off.run()
    XCTAssertTrue(plain.succeeded, "\(plain.errors)")
    XCTAssertEqual(plain.notCached.keys.sorted(), ["expand"])
    XCTAssertEqual(plain.outcomes["text"], .ran, "T5 encodes the prompt as written")
    XCTAssertEqual(server.requests.count, 1)
  }
}
