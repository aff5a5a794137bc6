import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// One problem in a workflow, with where it was written. Validation collects all of them before anything runs.
public struct Diagnostic: Error, Hashable, Sendable, CustomStringConvertible {
  public var location: SourceLocation?
  public var message: String

  public init(_ message: String, at location: SourceLocation?) {
    self.location = location
    self.message = Diagnostic.sanitize(message)
  }

  /// What a message may show a terminal: control characters escaped (`\n`, `\u{1b}`), and at most
  /// `WorkflowLimits.messageMaxChars` characters (the rest is counted, not echoed).
  public static func sanitize(_ text: String, limit: Int = WorkflowLimits.messageMaxChars) -> String {
    var out = ""
    var shown = 0
    var index = text.unicodeScalars.startIndex
    let scalars = text.unicodeScalars
    while index < scalars.endIndex {
      if shown >= limit {
        let rest = scalars.distance(from: index, to: scalars.endIndex)
        out += "… (\(rest) more characters)"
        break
      }
      let scalar = scalars[index]
      switch scalar {
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) {
          out += "\\u{\(String(scalar.value, radix: 16))}"
        } else {
          out.unicodeScalars.append(scalar)
        }
      }
      shown += 1
      index = scalars.index(after: index)
    }
    return out
  }

  /// The first `limit` characters of a user value for a message, with "…" when cut.
  public static func clip(_ text: String, _ limit: Int) -> String {
    guard text.utf8.count > limit else { return text }
    let head = text.prefix(limit)
    return head.count < text.count ? head + "…" : text
  }

  public var description: String {
    if let location { return "\(location): error: \(message)" }
    return "error: \(message)"
  }
}

/// Errors of the Workflow target.
public enum WorkflowError: Error, CustomStringConvertible, Sendable {
  /// The workflow did not validate; every problem is listed.
  case invalid([Diagnostic])
  case io(path: String, message: String)
  /// A node's run function threw, or returned outputs that don't match its declaration.
  case nodeFailed(node: String, type: String, message: String)
  case cancelled
  case cache(path: String, message: String)
  case usage(String)

  public var description: String {
    switch self {
    case .invalid(let diagnostics):
      return diagnostics.map(\.description).joined(separator: "\n")
    case .io(let path, let message):
      return "\(path): \(message)"
    case .nodeFailed(let node, let type, let message):
      return "node '\(node)' (\(type)) failed: \(Diagnostic.sanitize(message))"
    case .cancelled:
      return "cancelled"
    case .cache(let path, let message):
      return "cache \(path): \(message)"
    case .usage(let message):
      return message
    }
  }
}

/// Thrown by `NodeContext.progress` / `checkCancelled` when the run is being cancelled.
public struct CancelledError: Error, CustomStringConvertible, Sendable {
  public init() {}
  public var description: String { "cancelled" }
}

/// Every bound the Workflow target puts on user input, in one place; each can be raised through the
/// environment variable named beside it. Workflows/README.md ("Limits") lists them for users.
public enum WorkflowLimits {
  static func environment(_ name: String, default value: Int) -> Int {
    guard let text = ProcessInfo.processInfo.environment[name], let n = Int(text), n > 0 else { return value }
    return n
  }
  /// Deepest YAML nesting (`COGFLOW_YAML_MAX_DEPTH`, default 200): every walk over YAML values is recursive.
  public static let yamlMaxDepth = environment("COGFLOW_YAML_MAX_DEPTH", default: 200)
  /// YAML nodes in a document with every alias expanded (`COGFLOW_YAML_MAX_NODES`, default 1,000,000).
  public static let yamlMaxNodes = environment("COGFLOW_YAML_MAX_NODES", default: 1_000_000)
  /// Largest workflow file read, in bytes (`COGFLOW_YAML_MAX_BYTES`, default 64 MiB).
  public static let yamlMaxBytes = environment("COGFLOW_YAML_MAX_BYTES", default: 64 << 20)
  /// Node instances after matrix/foreach expansion (`--max-nodes`, else `COGFLOW_MAX_NODES`, default 100,000).
  public static let defaultMaxNodes = environment("COGFLOW_MAX_NODES", default: 100_000)
  /// Characters of one error message (fixed): longer values are cut and counted, not echoed.
  public static let messageMaxChars = 2_000
  /// Files in one chain of includes (fixed): reading an include recurses.
  public static let maxIncludeDepth = 64
  /// Cycles listed by validation (fixed); the count of the rest is given.
  public static let maxCyclesListed = 100
}

/// Reading files a user names: only regular files are read, and their type is checked on a descriptor
/// opened without blocking, so a FIFO, a device or /dev/zero fails at once with a message that says what it is.
public enum RegularFile {
  public struct Problem: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
  }

  /// "a directory", "a FIFO (named pipe)", … for a `st_mode`.
  public static func kindName(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFREG: return "a regular file"
    case S_IFDIR: return "a directory"
    case S_IFIFO: return "a FIFO (named pipe)"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFSOCK: return "a socket"
    default: return "not a regular file"
    }
  }

  /// Opens `path` for reading if it is a regular file (symlinks followed); the caller closes the descriptor.
  public static func openRegular(_ path: String, what: String) throws -> (fd: Int32, size: Int) {
    let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard fd >= 0 else {
      let reason = errno == ENOENT ? "not found" : String(cString: strerror(errno))
      throw Problem(message: "cannot read \(what) '\(path)': \(reason)")
    }
    var st = stat()
    guard fstat(fd, &st) == 0 else {
      close(fd)
      throw Problem(message: "cannot read \(what) '\(path)': stat failed")
    }
    guard (st.st_mode & S_IFMT) == S_IFREG else {
      close(fd)
      throw Problem(message: "\(what) '\(path)' is \(kindName(st.st_mode)), not a regular file")
    }
    // Regular files ignore O_NONBLOCK; clear it anyway so later reads behave normally.
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
    return (fd, Int(st.st_size))
  }

  /// The bytes of a regular file of at most `limit` bytes.
  public static func readAll(_ path: String, limit: Int, what: String) throws -> Data {
    let (fd, size) = try openRegular(path, what: what)
    defer { close(fd) }
    guard size <= limit else {
      throw Problem(message: "\(what) '\(path)' is \(size) bytes, more than the \(limit)-byte limit")
    }
    var data = Data(count: size)
    var offset = 0
    try data.withUnsafeMutableBytes { raw in
      while offset < size {
        let n = read(fd, raw.baseAddress! + offset, size - offset)
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else {
          throw Problem(message: "cannot read \(what) '\(path)': \(String(cString: strerror(errno)))")
        }
        if n == 0 { break }
        offset += n
      }
    }
    return data.prefix(offset)
  }

  /// What `path` is, or nil when it does not exist ("a FIFO (named pipe)", "a directory", …), without opening it.
  public static func kind(_ path: String) -> (isRegular: Bool, isDirectory: Bool, name: String)? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    let t = st.st_mode & S_IFMT
    return (t == S_IFREG, t == S_IFDIR, kindName(st.st_mode))
  }
}
