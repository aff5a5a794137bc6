// swift-tools-version:6.0
// CogFlow: CogView3 relay diffusion as cached YAML workflows on the CPU.
import Foundation
import PackageDescription

/// The vector units of the building machine. CogFlow is built from source where it runs (like
/// `-march=native`), so the numeric targets may use AVX2/FMA or AVX-512 when this CPU has them; the
/// plain x86-64 baseline (SSE2) runs exact erf/exp kernels several times slower.
/// `COGFLOW_PORTABLE=1` builds for the baseline instead (binaries to copy to other machines).
func nativeCPUFlags() -> [String] {
  #if arch(x86_64)
    guard ProcessInfo.processInfo.environment["COGFLOW_PORTABLE"] == nil,
      let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
      let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
    else { return [] }
    let flags = Set(line.split(separator: " ").map(String.init))
    if flags.isSuperset(of: ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "fma", "f16c"]) {
      return ["-target-cpu", "skylake-avx512", "-DCOGFLOW_FMA"]
    }
    if flags.isSuperset(of: ["avx2", "fma", "f16c", "bmi2", "movbe"]) {
      return ["-target-cpu", "haswell", "-DCOGFLOW_FMA"]
    }
  #endif
  return []
}

// Release builds of numeric code: no bounds checks in the kernels, and the machine's vector units.
let numericFlags: [SwiftSetting] = [
  .unsafeFlags(["-Ounchecked"] + nativeCPUFlags(), .when(configuration: .release))
]

let package = Package(
  name: "CogFlow",
  platforms: [.macOS(.v14)],
  products: [
    .executable(name: "cogflow", targets: ["cogflow"]),
    .library(name: "CogFlow", targets: ["Tensor", "ModelIO", "Models", "Diffusion", "Workflow", "Nodes"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    // SHA-256 for keys and model digests (BoringSSL with the CPU's SHA instructions). 3.12.3 rather than 4.5.2:
    // a clean release build of the package alone took 161 CPU-seconds against 183 (user + sys, loaded machine).
    .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
  ],
  targets: [
    .systemLibrary(
      name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
    .systemLibrary(name: "CYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
    .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
    .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
    // libpng reports errors by longjmp, which Swift frames cannot survive: C wrappers catch it.
    .target(name: "CPNGBridge", dependencies: ["CPNG"]),

    .target(name: "Tensor", dependencies: ["COpenBLAS"], swiftSettings: numericFlags),
    .target(name: "ModelIO", dependencies: ["Tensor", "CPNG", "CPNGBridge", "CZlib"]),
    .target(name: "Models", dependencies: ["Tensor", "ModelIO"], swiftSettings: numericFlags),
    .target(name: "Diffusion", dependencies: ["Tensor"], swiftSettings: numericFlags),
    .target(
      name: "Workflow", dependencies: ["CYAML", .product(name: "Crypto", package: "swift-crypto")]),
    .target(
      name: "Nodes", dependencies: ["Tensor", "ModelIO", "Models", "Diffusion", "Workflow"],
      path: "Nodes", exclude: ["README.md", "Resources"]),
    .executableTarget(
      name: "cogflow",
      dependencies: [
        "Tensor", "ModelIO", "Models", "Diffusion", "Workflow", "Nodes", "CZlib",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),

    // CogFlow embedded as a library (Examples/README.md); EmbedExampleTests runs it on the tiny model set.
    .executableTarget(
      name: "cogflow-embed-example", dependencies: ["Nodes", "Workflow", "ModelIO", "Tensor"], path: "Examples/embed"),

    // Fuzz driver for the ModelIO readers and the workflow front end; the libFuzzer build is described in Tests/Fuzz/README.md.
    .executableTarget(
      name: "cogflow-fuzz", dependencies: ["ModelIO", "Workflow"], path: "Tests/Fuzz", exclude: ["README.md", "corpus"]),

    .testTarget(name: "TensorTests", dependencies: ["Tensor"]),
    .testTarget(name: "ModelIOTests", dependencies: ["ModelIO", "Tensor"]),
    .testTarget(name: "ModelsTests", dependencies: ["Models", "ModelIO", "Tensor", "Diffusion"]),
    .testTarget(name: "DiffusionTests", dependencies: ["Diffusion", "Tensor"]),
    .testTarget(name: "WorkflowTests", dependencies: ["Workflow"]),
    .testTarget(name: "NodesTests", dependencies: ["Nodes", "Workflow"]),
    .testTarget(name: "CLITests", dependencies: ["cogflow"]),
  ],
  swiftLanguageModes: [.v5]
)
