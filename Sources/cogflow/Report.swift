import ArgumentParser
import Foundation
import Workflow

struct ReportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "report",
    abstract: "Write a static HTML report of a batch from the cache: image grid, per-node time, failures, digests.",
    discussion: """
      Reads only the cache (and the run records the shards left there); computes nothing. Works for a
      one-machine run and for a sharded one alike. The folder is written beside --out and renamed into place,
      so a report is either complete or absent.
      """)
  @OptionGroup var file: WorkflowFileOptions
  @OptionGroup var cacheOptions: WorkflowCacheOptions
  @Option(help: "Output folder (default: report-<workflow name>).") var out: String?

  func run() throws {
    let (workflow, registry) = try WorkflowCLI.load(file)
    let cache = try cacheOptions.open()
    var report = BatchReport(workflow: workflow, registry: registry, cache: cache)
    let folder = out ?? "report-\(workflow.name)"
    do {
      try report.write(to: folder)
    } catch {
      WorkflowCLI.printError("error: cannot write the report to \(folder): \(error)")
      throw ExitCode(1)
    }
    print(
      "report \(folder)/index.html: \(report.images.count) images, \(report.rows.count) nodes"
        + " (\(report.count("computed")) computed, \(report.count("cached")) cached,"
        + " \(report.count("failed")) failed, \(report.count("missing")) missing)")
  }
}

/// A batch as the cache knows it: each node instance with its status, and the PNG outputs.
struct BatchReport {
  struct Row {
    var node: String
    var type: String
    var key: String?
    /// computed (by a recorded run), cached (found in the cache, no record of computing it), failed, missing.
    var status: String
    var seconds: Double?
    var detail: String
  }
  struct Image {
    var node: String
    var bindings: [(name: String, value: Value)]
    var file: String
    var digest: String
  }

  let workflow: ResolvedWorkflow
  let cache: DiskCache
  var rows: [Row] = []
  /// The PNG outputs, known once `write` has read them.
  var images: [Image] = []
  /// Every output of a cached node, read one at a time by `write` (a large batch does not fit in memory).
  var outputs: [(node: String, bindings: [(name: String, value: Value)], record: OutputRecord)] = []
  var instances = 0
  var records: [RunRecord] = []

  static let pngSignature = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])

  init(workflow: ResolvedWorkflow, registry: NodeRegistry, cache: DiskCache) {
    self.workflow = workflow
    self.cache = cache
    records = RunRecord.all(in: cache, workflowID: RunRecord.workflowID(workflow))
    instances = Sharding.units(of: workflow, count: 1).count
    let plan = Engine(workflow: workflow, registry: registry, cache: cache).plan()
    for item in plan {
      guard let node = workflow.node(item.node) else { continue }
      let last = records.last { $0.nodes[item.node] != nil }?.nodes[item.node]
      let computedBy = records.first { $0.nodes[item.node]?.outcome == NodeOutcome.ran.rawValue }
      var row = Row(node: item.node, type: item.type, key: item.key, status: "missing", seconds: nil, detail: "")
      if item.status == "cached", let key = item.key, let entry = cache.lookup(key) {
        row.seconds = entry.seconds
        if let computedBy {
          row.status = "computed"
          row.detail = "shard \(computedBy.shard) on \(computedBy.host)"
        } else {
          row.status = "cached"
          row.detail = "from an earlier run"
        }
        for (port, record) in entry.outputs.sorted(by: { $0.key < $1.key }) {
          outputs.append(("\(item.node).\(port)", node.bindings, record))
        }
      } else if node.spec.cachePolicy == .alwaysRun, let last, last.outcome == NodeOutcome.ran.rawValue {
        row.status = "computed"
        row.detail = "always runs (writes outside the cache)"
      } else if let last, last.outcome == NodeOutcome.failed.rawValue {
        row.status = "failed"
        row.detail = last.error ?? "failed"
      } else {
        row.detail = last.map { "last run: \($0.outcome)" } ?? "not computed yet"
      }
      rows.append(row)
    }
  }

  func count(_ status: String) -> Int { rows.filter { $0.status == status }.count }

  /// The grid's axes: rows by `prompt` when the batch varies it (else by the first variable), columns by the rest.
  var axes: (row: String?, columns: [String]) {
    var names: [String] = []
    for image in images { for b in image.bindings where !names.contains(b.name) { names.append(b.name) } }
    guard !names.isEmpty else { return (nil, []) }
    let row = names.contains("prompt") ? "prompt" : names[0]
    return (row, names.filter { $0 != row })
  }

  /// Copies the PNG outputs into `folder/images`, then writes `folder/index.html`.
  mutating func write(to folder: String) throws {
    let fm = FileManager.default
    let final = URL(fileURLWithPath: folder).standardizedFileURL
    let parent = final.deletingLastPathComponent()
    try fm.createDirectory(at: parent, withIntermediateDirectories: true)
    let staging = parent.appendingPathComponent(
      ".\(final.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
    try? fm.removeItem(at: staging)
    try fm.createDirectory(at: staging.appendingPathComponent("images"), withIntermediateDirectories: true)
    do {
      images = []
      var written = Set<String>()
      for output in outputs {
        // A corrupt object is dropped by the cache and left out here (the node shows as cached, without image).
        guard let bytes = try? cache.getObject(output.record), bytes.starts(with: Self.pngSignature) else { continue }
        let file = "images/\(output.record.digest).png"
        if written.insert(file).inserted { try bytes.write(to: staging.appendingPathComponent(file)) }
        images.append(Image(node: output.node, bindings: output.bindings, file: file, digest: output.record.digest))
      }
      try Data(html().utf8).write(to: staging.appendingPathComponent("index.html"))
      // Swap in place: the old report (if any) is moved aside, then removed.
      let old = parent.appendingPathComponent(
        ".\(final.lastPathComponent).old-\(ProcessInfo.processInfo.processIdentifier)")
      if fm.fileExists(atPath: final.path) { try fm.moveItem(at: final, to: old) }
      try fm.moveItem(at: staging, to: final)
      try? fm.removeItem(at: old)
    } catch {
      try? fm.removeItem(at: staging)
      throw error
    }
  }

  func html() -> String {
    func esc(_ s: String) -> String {
      var out = ""
      for c in s {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(c)
        }
      }
      return out
    }
    let (rowVar, columnVars) = axes
    func value(_ image: Image, _ name: String) -> String { image.bindings.first { $0.name == name }?.value.text ?? "" }
    func columnKey(_ image: Image) -> String { columnVars.map { "\($0)=\(value(image, $0))" }.joined(separator: ", ") }

    var rowValues: [String] = []
    var columnValues: [String] = []
    for image in images {
      let r = rowVar.map { value(image, $0) } ?? ""
      if !rowValues.contains(r) { rowValues.append(r) }
      let c = columnKey(image)
      if !columnValues.contains(c) { columnValues.append(c) }
    }
    var grid = "<table class=\"grid\" id=\"grid\"><tr><th>\(esc(rowVar ?? ""))</th>"
    grid += columnValues.map { "<th>\(esc($0.isEmpty ? "image" : $0))</th>" }.joined() + "</tr>\n"
    for r in rowValues {
      grid += "<tr><th class=\"prompt\">\(esc(r))</th>"
      for c in columnValues {
        let cell = images.filter { image in
          (rowVar.map { value(image, $0) } ?? "") == r && columnKey(image) == c
        }
        grid +=
          "<td>"
          + cell.map { image in
            "<a href=\"\(image.file)\"><img class=\"thumb\" src=\"\(image.file)\" alt=\"\(esc(image.node))\""
              + " title=\"\(esc(image.node))\"></a>"
          }.joined() + "</td>"
      }
      grid += "</tr>\n"
    }
    grid += "</table>"

    var table = "<table class=\"nodes\" id=\"nodes\"><tr><th>node</th><th>type</th><th>status</th><th>seconds</th>"
    table += "<th>where</th><th>key</th></tr>\n"
    for row in rows {
      table += "<tr class=\"\(row.status)\"><td>\(esc(row.node))</td><td>\(esc(row.type))</td><td>\(row.status)</td>"
      table += "<td>\(row.seconds.map { String(format: "%.3f", $0) } ?? "")</td><td>\(esc(row.detail))</td>"
      table += "<td><code>\(esc(row.key.map { String($0.prefix(16)) } ?? ""))</code></td></tr>\n"
    }
    table += "</table>"

    let failures = rows.filter { $0.status == "failed" }
    var failureList = "<ul id=\"failures\">"
    failureList += failures.map { "<li><b>\(esc($0.node))</b>: \(esc($0.detail))</li>" }.joined()
    failureList += failures.isEmpty ? "<li>none</li></ul>" : "</ul>"

    var digests: [(String, String)] = []
    if let digest = try? SHA256.hashFile(atPath: workflow.file) { digests.append((workflow.file, digest)) }
    var modelFiles = Set<String>()
    for node in workflow.nodes { for model in node.params.models.values { modelFiles.formUnion(model.files) } }
    for path in modelFiles.sorted() {
      digests.append((path, (try? cache.fileDigest(path)) ?? "unreadable"))
    }
    let digestList = digests.map { "<li><code>\(esc($0.1))</code> \(esc($0.0))</li>" }.joined()
    let shards = Set(records.map(\.shard)).sorted().joined(separator: ", ")

    return """
      <!DOCTYPE html>
      <html><head><meta charset="utf-8"><title>\(esc(workflow.name)) — cogflow report</title>
      <style>
      body { font-family: sans-serif; margin: 1.5em; }
      table { border-collapse: collapse; margin-bottom: 1.5em; }
      td, th { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
      img.thumb { width: 128px; height: 128px; image-rendering: pixelated; margin: 2px; }
      tr.failed td { background: #fdd; } tr.missing td { background: #ffd; }
      </style></head>
      <body data-instances="\(instances)" data-images="\(images.count)" data-nodes="\(rows.count)"
       data-computed="\(count("computed"))" data-cached="\(count("cached"))" data-failed="\(count("failed"))"
       data-missing="\(count("missing"))">
      <h1>\(esc(workflow.name))</h1>
      <p id="summary">\(instances) instances, \(images.count) images, \(rows.count) nodes:
      \(count("computed")) computed, \(count("cached")) cached, \(count("failed")) failed,
      \(count("missing")) missing. Runs recorded: \(records.count) (shards: \(esc(shards.isEmpty ? "none" : shards))).
      <span id="loaded"></span></p>
      <h2>Images</h2>
      \(grid)
      <h2>Failures</h2>
      \(failureList)
      <h2>Nodes</h2>
      \(table)
      <h2>Digests (SHA-256)</h2>
      <ul id="digests">\(digestList)</ul>
      <script>
      window.addEventListener('load', function () {
        var imgs = document.querySelectorAll('img.thumb');
        var ok = 0;
        imgs.forEach(function (i) { if (i.complete && i.naturalWidth > 0) ok++; });
        document.body.setAttribute('data-loaded-images', String(ok));
        document.getElementById('loaded').textContent = ok + ' of ' + imgs.length + ' images loaded.';
      });
      </script>
      </body></html>

      """
  }
}
