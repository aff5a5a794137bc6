import ArgumentParser
import Foundation
import Workflow

struct CacheCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cache", abstract: "Inspect and maintain the node output cache.",
    subcommands: [CacheStats.self, CacheGC.self, CacheVerify.self, CacheClear.self])
}

struct CacheStats: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "stats", abstract: "Entries, objects and bytes.")
  @OptionGroup var cacheOptions: WorkflowCacheOptions
  @Flag(help: "Print JSON.") var json = false

  func run() throws {
    let cache = try cacheOptions.open()
    let stats = cache.stats()
    if json {
      print(
        "{\"path\":\(Value.jsonString(cache.root.path)),\"entries\":\(stats.entries),\"objects\":\(stats.objects),"
          + "\"bytes\":\(stats.objectBytes),\"tmpFiles\":\(stats.tmpFiles),"
          + "\"computeSeconds\":\(String(format: "%.3f", stats.computeSeconds)),"
          + "\"maxBytes\":\(stats.maxBytes.map(String.init) ?? "null")}")
      return
    }
    print("cache:    \(cache.root.path)")
    print(
      "entries:  \(stats.entries) (\(String(format: "%.1f", stats.computeSeconds)) s of compute saved per full hit)")
    print("objects:  \(stats.objects), \(WorkflowCLI.formatSize(stats.objectBytes))")
    print("budget:   \(stats.maxBytes.map(WorkflowCLI.formatSize) ?? "none")")
    if stats.tmpFiles > 0 { print("tmp:      \(stats.tmpFiles) leftover temp files (gc removes them)") }
  }
}

struct CacheGC: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "gc",
    abstract: "Remove temp files and unreferenced objects; with --max-size, evict by size, age and compute cost.")
  @OptionGroup var cacheOptions: WorkflowCacheOptions
  @Option(help: "Byte budget (e.g. 500M, 20G); default: the saved budget.") var maxSize: String?
  @Flag(help: "Save --max-size as the budget enforced after every run.") var save = false

  func run() throws {
    let cache = try cacheOptions.open()
    var budget = cache.maxBytes
    if let maxSize {
      guard let size = WorkflowCLI.parseSize(maxSize) else {
        WorkflowCLI.printError(
          "error: --max-size '\(Diagnostic.sanitize(maxSize, limit: 100))' is not a size from 0 to 4 EiB"
            + " (digits, an optional fraction and a unit K, M, G, T, P or E: e.g. 500M, 1.5G)")
        throw ExitCode(2)
      }
      budget = size
      if save { cache.maxBytes = size }
    }
    let report = try cache.exclusive { cache.collectGarbage(maxBytes: budget) }!
    print(
      "removed \(report.entriesRemoved) entries, \(report.objectsRemoved) objects "
        + "(\(WorkflowCLI.formatSize(report.bytesFreed))); kept \(WorkflowCLI.formatSize(report.bytesKept))")
  }
}

struct CacheVerify: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "verify", abstract: "Check every entry and object checksum; drop what is corrupt.")
  @OptionGroup var cacheOptions: WorkflowCacheOptions

  func run() throws {
    let cache = try cacheOptions.open()
    let report = try cache.exclusive { cache.verify() }!
    for problem in report.problems { print(problem) }
    print(
      "checked \(report.entriesChecked) entries, \(report.objectsChecked) objects: "
        + (report.problems.isEmpty ? "ok" : "\(report.problems.count) problems fixed")
        + (report.unreferencedRemoved > 0 ? "; removed \(report.unreferencedRemoved) unreferenced objects" : ""))
    if !report.problems.isEmpty { throw ExitCode(1) }
  }
}

struct CacheClear: ParsableCommand {
  static let configuration = CommandConfiguration(commandName: "clear", abstract: "Delete every cache entry.")
  @OptionGroup var cacheOptions: WorkflowCacheOptions

  func run() throws {
    let cache = try cacheOptions.open()
    _ = try cache.exclusive { cache.clear() }
    print("cleared \(cache.root.path)")
  }
}
