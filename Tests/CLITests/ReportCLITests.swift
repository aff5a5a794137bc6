import Foundation
import XCTest

/// `cogflow report`: the HTML page, checked in a real browser (headless Chromium, Debian's `chromium`).
final class ReportCLITests: XCTestCase {
  override func setUp() {
    XCTAssertTrue(FileManager.default.isExecutableFile(atPath: CLI.binary), "build cogflow first: \(CLI.binary)")
  }

  static var chromium: String? {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
      for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
        let path = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
      }
    }
    return nil
  }

  /// Runs headless Chromium on a page; returns stdout (the DOM with --dump-dom).
  static func chromium(_ arguments: [String], cwd: String) throws -> String {
    guard let binary = chromium else { throw XCTSkip("no chromium") }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: binary)
    // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    process.arguments =
      ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir=\(cwd)/chromium-profile"]
      + arguments
    let out = cwd + "/chromium-\(UUID().uuidString).out"
    _ = FileManager.default.createFile(atPath: out, contents: nil)
    process.standardOutput = FileHandle(forWritingAtPath: out)
    process.standardError = FileHandle(forWritingAtPath: "/dev/null")
    try process.run()
    let deadline = Date().addingTimeInterval(90)
    while process.isRunning && Date() < deadline { usleep(50_000) }
    if process.isRunning {
      process.terminate()
      XCTFail("chromium did not finish in 90 s")
    }
    return (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
  }

  static func attribute(_ name: String, in dom: String) -> Int? {
    guard let range = dom.range(of: "\(name)=\"") else { return nil }
    return Int(dom[range.upperBound...].prefix { $0.isNumber })
  }

  /// Width and height from a PNG's IHDR.
  static func pngSize(_ data: Data) -> (Int, Int)? {
    let b = [UInt8](data.prefix(24))
    guard b.count == 24, b[0] == 0x89, String(decoding: b[12..<16], as: UTF8.self) == "IHDR" else { return nil }
    let w = b[16..<20].reduce(0) { $0 << 8 | Int($1) }
    let h = b[20..<24].reduce(0) { $0 << 8 | Int($1) }
    return (w, h)
  }

  func testReportLoadsInChromiumWithEveryImage() throws {
    guard Self.chromium != nil else {
      throw XCTSkip("headless Chromium not found: apt-get install chromium (CI's .ci/run installs it)")
    }
    let scratch = Scratch()
    let workflow = scratch.write("batch.yaml", ToyBatch.text)
    let env = CLI.environment(cache: scratch.cache)
    let run = try CLI.run(["run", workflow, "--quiet"], env: env, cwd: scratch.path)
    XCTAssertEqual(run.status, 0, run.stderr)
    let report = try CLI.run(["report", workflow, "--out", "rep"], env: env, cwd: scratch.path)
    XCTAssertEqual(report.status, 0, report.stderr)
    XCTAssertEqual(
      report.stdout, "report rep/index.html: 6 images, 12 nodes (12 computed, 0 cached, 0 failed, 0 missing)\n")
    let page = "file://\(scratch.path)/rep/index.html"

    let dom = try Self.chromium(["--virtual-time-budget=5000", "--dump-dom", page], cwd: scratch.path)
    XCTAssertEqual(Self.attribute("data-images", in: dom), 6, dom)
    XCTAssertEqual(Self.attribute("data-instances", in: dom), 6)
    XCTAssertEqual(Self.attribute("data-nodes", in: dom), 12)
    XCTAssertEqual(Self.attribute("data-failed", in: dom), 0)
    // Set by the page's own script after load: images the browser actually decoded.
    XCTAssertEqual(Self.attribute("data-loaded-images", in: dom), 6, "not every image loaded")
    XCTAssertTrue(dom.contains("6 of 6 images loaded."))
    XCTAssertEqual(dom.components(separatedBy: "<img class=\"thumb\"").count - 1, 6)
    XCTAssertEqual(dom.components(separatedBy: "<tr class=\"computed\">").count - 1, 12)
    // The grid: a row per prompt, a column per seed.
    for text in ["a red fox", "a lighthouse at dawn", "seed=1", "seed=2", "seed=3"] {
      XCTAssertTrue(dom.contains(">\(text)</th>"), text)
    }

    // The screenshot: the requested size, and much more than an empty page of the same size holds.
    let blank = scratch.write("blank.html", "<!DOCTYPE html><html><body></body></html>")
    _ = try Self.chromium(
      ["--window-size=1000,800", "--screenshot=\(scratch.path)/blank.png", "file://\(blank)"], cwd: scratch.path)
    _ = try Self.chromium(
      ["--window-size=1000,800", "--virtual-time-budget=5000", "--screenshot=\(scratch.path)/shot.png", page],
      cwd: scratch.path)
    let shot = try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/shot.png"))
    let empty = try Data(contentsOf: URL(fileURLWithPath: scratch.path + "/blank.png"))
    XCTAssertEqual(Self.pngSize(shot)?.0, 1000)
    XCTAssertEqual(Self.pngSize(shot)?.1, 800)
    XCTAssertGreaterThan(shot.count, 10 * empty.count, "the screenshot looks empty (\(shot.count) bytes)")
  }

  /// Failures are listed with their errors, the missing downstream nodes too; a rerun that caches shows "cached".
  func testReportListsFailuresAndMissing() throws {
    let scratch = Scratch()
    let workflow = scratch.write(
      "fail.yaml",
      ToyBatch.text + "\n  bad: { type: toy.fail, in: { a: enc.out }, with: { message: \"the bad branch\" } }\n"
        + "  after: { type: toy.add, in: { a: bad.out } }\n")
    let env = CLI.environment(cache: scratch.cache)
    let run = try CLI.run(["run", workflow, "--quiet"], env: env, cwd: scratch.path)
    XCTAssertEqual(run.status, 1)
    let report = try CLI.run(["report", workflow, "--out", "rep"], env: env, cwd: scratch.path)
    XCTAssertEqual(report.status, 0, report.stderr)
    XCTAssertTrue(
      report.stdout.contains("6 images, 16 nodes (12 computed, 0 cached, 2 failed, 2 missing)"), report.stdout)
    let html = scratch.read("rep/index.html")
    XCTAssertTrue(
      html.contains("<li><b>bad[prompt=#0]</b>: node &#39;bad[prompt=#0]&#39; (toy.fail) failed: the bad branch</li>"),
      html)
    XCTAssertEqual(html.components(separatedBy: "<tr class=\"missing\">").count - 1, 2)

    // Another cache filled by a run the records do not know of: everything "cached", nothing "computed".
    try FileManager.default.removeItem(atPath: scratch.cache + "/runs")
    let again = try CLI.run(["report", workflow, "--out", "rep"], env: env, cwd: scratch.path)
    XCTAssertTrue(again.stdout.contains("(0 computed, 12 cached, 0 failed, 4 missing)"), again.stdout)
  }

  func testReportBadInputLeavesNothingPartial() throws {
    let scratch = Scratch()
    let env = CLI.environment(cache: scratch.cache)
    let missing = try CLI.run(["report", "nope.yaml", "--out", "rep"], env: env, cwd: scratch.path)
    XCTAssertEqual(missing.status, 2)
    XCTAssertTrue(missing.stderr.contains("workflow file 'nope.yaml' not found"), missing.stderr)
    let workflow = scratch.write("batch.yaml", ToyBatch.text)
    XCTAssertEqual(try CLI.run(["run", workflow, "--quiet"], env: env, cwd: scratch.path).status, 0)
    // The output's parent is a file: a clear error, and no staging folder left behind.
    scratch.write("afile", "x")
    let blocked = try CLI.run(["report", workflow, "--out", "afile/rep"], env: env, cwd: scratch.path)
    XCTAssertEqual(blocked.status, 1)
    XCTAssertTrue(blocked.stderr.contains("cannot write the report to afile/rep"), blocked.stderr)
    // An old report is replaced whole.
    XCTAssertEqual(try CLI.run(["report", workflow, "--out", "rep"], env: env, cwd: scratch.path).status, 0)
    scratch.write("rep/stale.txt", "old")
    XCTAssertEqual(try CLI.run(["report", workflow, "--out", "rep"], env: env, cwd: scratch.path).status, 0)
    XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.path + "/rep/stale.txt"))
    let left = try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { $0.hasPrefix(".rep") }
    XCTAssertEqual(left, [])
    XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path + "/rep/images").count, 6)
  }
}
