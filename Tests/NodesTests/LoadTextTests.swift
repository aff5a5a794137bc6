import Foundation
import XCTest

@testable import Nodes
@testable import Workflow

final class LoadTextTests: XCTestCase {
  func testLinesSkipBlanksAndComments() throws {
    let dir = try Paths.temporaryFolder(self)
    let path = dir.path + "/p.txt"
    try "# prompts\n\nfirst one\n  second  \n".write(toFile: path, atomically: true, encoding: .utf8)
    func line(_ i: Int) throws -> String {
      let out = try NodeHarness.run(LoadTextNode(), [:], ["line": .int(i)], files: ["path": path])
      return out["text"]?.text ?? ""
    }
    XCTAssertEqual(try line(0), "first one")
    XCTAssertEqual(try line(1), "second")
    XCTAssertThrowsError(try line(2)) { error in XCTAssertTrue("\(error)".contains("line:"), "\(error)") }
  }
}
