import Foundation
import Workflow

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The connect timeout. URLSession on Linux (FoundationNetworking over libcurl) has one timer for a whole
/// transfer and sets no connect timeout, so before each attempt this opens (and closes) a TCP connection to
/// the server itself, bounded by `connect-timeout`: an unreachable or silent host fails fast with its own message,
/// and the read timeout then only measures the server. Skipped when a proxy is configured (the HTTP client then
/// connects to the proxy, not to the host).
enum ConnectProbe {
  static func proxyConfigured(_ environment: [String: String]) -> Bool {
    ["http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"].contains {
      !(environment[$0] ?? "").isEmpty
    }
  }

  /// nil when a connection was made within `timeout` seconds, else what went wrong. Checks `isCancelled`
  /// every 50 ms (throws `CancelledError`).
  static func check(url: URL, timeout: Double, isCancelled: () -> Bool) throws -> String? {
    guard let host = url.host else { return "no host in the URL" }
    let port = url.port ?? (url.scheme?.lowercased() == "https" ? 443 : 80)
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    #if canImport(Glibc)
      hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    #else
      hints.ai_socktype = SOCK_STREAM
    #endif
    var list: UnsafeMutablePointer<addrinfo>?
    let status = getaddrinfo(host, String(port), &hints, &list)
    guard status == 0, let first = list else {
      return "cannot resolve host \(host): \(String(cString: gai_strerror(status)))"
    }
    defer { freeaddrinfo(list) }
    let deadline = Date().addingTimeInterval(timeout)
    var problem = "no address for \(host)"
    var entry: UnsafeMutablePointer<addrinfo>? = first
    while let info = entry {
      entry = info.pointee.ai_next
      let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
      guard fd >= 0 else { continue }
      defer { close(fd) }
      _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
      if connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return nil }
      guard errno == EINPROGRESS else {
        problem = "cannot connect to \(host):\(port): \(String(cString: strerror(errno)))"
        continue
      }
      while true {
        if isCancelled() { throw CancelledError() }
        let left = deadline.timeIntervalSinceNow
        if left <= 0 {
          return String(format: "could not connect to \(host):\(port) within connect-timeout %.1f s", timeout)
            + " (is the server running and reachable?)"
        }
        var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let ready = poll(&poller, 1, Int32(min(50, max(1, left * 1000))))
        if ready < 0 && errno != EINTR {
          problem = "cannot connect to \(host):\(port): \(String(cString: strerror(errno)))"
          break
        }
        if ready > 0 {
          var error: Int32 = 0
          var length = socklen_t(MemoryLayout<Int32>.size)
          _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
          if error == 0 { return nil }
          problem = "cannot connect to \(host):\(port): \(String(cString: strerror(error)))"
          break
        }
      }
    }
    return problem
  }
}
