// swift-tools-version:6.0
// CogFlow: CogView3 relay diffusion as cached YAML workflows on the CPU.
import PackageDescription

// Release builds of numeric code: let the optimizer use the machine's vector units.
let numericFlags: [SwiftSetting] = [
  .unsafeFlags(["-Ounchecked"], .when(configuration: .release))
]

let package = Package(
  name: "CogFlow",
  platforms: [.macOS(.v14)],
  products: [
    .executable(name: "cogflow", targets: ["cogflow"]),
    .library(name: "CogFlow", targets: ["Tensor", "ModelIO", "Models", "Diffusion", "Workflow", "Nodes"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0")
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
    .target(name: "Workflow", dependencies: ["CYAML"]),
    .target(
      name: "Nodes", dependencies: ["Tensor", "ModelIO", "Models", "Diffusion", "Workflow"],
      path: "Nodes", exclude: ["README.md"]),
    .executableTarget(
      name: "cogflow",
      dependencies: [
        "Tensor", "ModelIO", "Models", "Diffusion", "Workflow", "Nodes",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),

    // Fuzz driver for the ModelIO readers; the libFuzzer build is described in Tests/Fuzz/README.md.
    .executableTarget(name: "cogflow-fuzz", dependencies: ["ModelIO"], path: "Tests/Fuzz", exclude: ["README.md"]),

    .testTarget(name: "TensorTests", dependencies: ["Tensor"]),
    .testTarget(name: "ModelIOTests", dependencies: ["ModelIO", "Tensor"]),
    .testTarget(name: "ModelsTests", dependencies: ["Models", "ModelIO", "Tensor"]),
    .testTarget(name: "DiffusionTests", dependencies: ["Diffusion", "Tensor"]),
    .testTarget(name: "WorkflowTests", dependencies: ["Workflow"]),
    .testTarget(name: "NodesTests", dependencies: ["Nodes", "Workflow"]),
    .testTarget(name: "CLITests", dependencies: ["cogflow"]),
  ],
  swiftLanguageModes: [.v5]
)
