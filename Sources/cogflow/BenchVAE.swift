import ArgumentParser
import Diffusion
import Foundation
import ModelIO
import Models
import Tensor

/// `cogflow bench vae`: SDXL-VAE encode and decode with random bf16 weights, at 1024² by default.
struct BenchVAE: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "vae",
    abstract: "Time the KL autoencoder's encode and decode with random bf16 weights (seconds, GFLOP/s, peak RSS).",
    discussion: """
      At 1024² the decoder's full-resolution activations are 0.5–1 GB each (several GB in all) and a pass takes \
      minutes on a few cores; the mid attention runs over (side/8)² tokens in query chunks. Reduced variants: \
      --size 256, --channels 32.

      --tile N runs tiled (Models' TiledAutoencoder on Diffusion's TiledGroupNormRunner): cores of N image \
      pixels (N/8 latent pixels for the decoder), GroupNorm statistics pooled over the whole image, tile \
      states in files under $TMPDIR (--tile-store), so memory is bounded by the tile size. The mid attention \
      runs globally (exact; it costs 4·(side/8)⁴·512 FLOPs) unless --attention per-tile (an approximation) or \
      auto (global up to 2048², per tile above) is given; --compare also runs untiled and prints the largest pixel difference.
      """)

  @Flag(help: "Print one JSON object per measured pass instead of a table.") var json = false
  @Option(help: "Image side to measure; repeat for several (default 1024).") var size: [Int] = []
  @Option(help: "Base width `ch` (128 = SDXL VAE; a multiple of 32).") var channels: Int = 128
  @Option(help: "Query rows per mid-attention chunk.") var queryChunk: Int = 1024
  @Option(help: "Passes per size and direction (each is reported).") var passes: Int = 1
  @Option(help: "Threads (default: all cores or $COGFLOW_THREADS).") var threads: Int?
  @Flag(help: "Skip the encoder.") var decodeOnly = false
  @Flag(help: "Let every tensor borrow one shared random buffer (compute only; see `bench unet`).")
  var sharedWeights = false
  @Option(help: "Tile side in image pixels (a multiple of 8); 0 = untiled.") var tile: Int = 0
  @Option(help: "Mid attention when tiled: global (exact), per-tile (approximate) or auto (global up to 2048² images).")
  var attention: String = TiledAutoencoder.Attention.global.rawValue
  @Option(help: "Where tiles keep their state between GroupNorm passes: file, memory or recompute.")
  var tileStore: String = "file"
  @Flag(help: "With --tile: also run untiled and print the largest difference (images on the [0, 1] scale).")
  var compare = false

  func validate() throws {
    guard passes >= 1, queryChunk >= 1 else { throw ValidationError("--passes and --query-chunk must be at least 1") }
    guard channels >= 32, channels % 32 == 0 else { throw ValidationError("--channels must be a multiple of 32") }
    guard size.allSatisfy({ $0 >= 8 && $0 % 8 == 0 }) else { throw ValidationError("--size must be a multiple of 8") }
    if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    guard tile == 0 || (tile >= 8 && tile % 8 == 0) else { throw ValidationError("--tile must be a multiple of 8") }
    guard TiledAutoencoder.Attention(rawValue: attention) != nil else {
      throw ValidationError("--attention must be auto, global or per-tile")
    }
    guard ["file", "memory", "recompute"].contains(tileStore) else {
      throw ValidationError("--tile-store must be file, memory or recompute")
    }
  }

  /// The tiled runner for cores of `side` input pixels.
  func runner(_ side: Int) -> TiledStageRunner {
    let store: TiledGroupNormRunner.StoreKind =
      switch tileStore {
      case "memory": .memory
      case "recompute": .recompute
      default: .file(directory: FileManager.default.temporaryDirectory)
      }
    return TiledGroupNormRunner.stageRunner(tile: side, store: store)
  }

  static func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
    zip(a.data, b.data).reduce(0) { max($0, abs($1.0 - $1.1)) }
  }

  func run() throws {
    if let threads { Parallel.threadCount = threads }
    var config = AutoencoderConfiguration.sdxl
    config.channels = channels
    let expected = try Autoencoder.expectedShapes(config)
    let parameters = expected.values.reduce(0) { $0 + $1.elementCount }
    var vae = try Autoencoder(
      configuration: config,
      weights: sharedWeights
        ? try BenchSupport.sharedBF16Source(expected, seed: 2) : try BenchSupport.randomBF16Source(expected, seed: 2),
      name: "VAE (random bf16)")
    vae.queryChunk = queryChunk
    let sgemm = try BenchSupport.sgemmRate()
    if !json {
      print(
        "VAE: \(parameters) parameters; threads \(Parallel.threadCount); sgemm \(String(format: "%.1f", sgemm)) GFLOP/s"
      )
    }
    let tiled = tile > 0 ? TiledAutoencoder(vae, attention: TiledAutoencoder.Attention(rawValue: attention)!) : nil
    let suffix =
      (channels == 128 ? "" : "-reduced") + (sharedWeights ? "-shared-weights" : "")
      + (tile > 0 ? "-tile\(tile)-\(attention)" : "")
    for side in size.isEmpty ? [1024] : size {
      let detail =
        "ch \(channels), \(parameters) params, "
        + (tiled.map {
          "tiles of \(tile) px (halo \($0.decoderHalo) latent px decoding, \($0.encoderHalo) px encoding), "
            + "\(attention) attention, \(tileStore) store"
        } ?? "mid attention over \((side / 8) * (side / 8)) tokens")
      if !decodeOnly {
        let image = BenchSupport.randomTensor([1, 3, side, side], seed: 21)
        for pass in 0..<passes {
          vae.flopCounter.reset()
          let start = Date()
          let posterior = try tiled?.encode(image, runner: runner(tile)) ?? vae.encode(image)
          let seconds = Date().timeIntervalSince(start)
          if compare, tiled != nil {
            let reference = try vae.encode(image)
            print(
              "vae-encode-\(side)x\(side)\(suffix): max |Δ mean| vs untiled \(Self.maxDifference(posterior.mean, reference.mean))"
            )
          }
          guard posterior.mean.data.allSatisfy(\.isFinite) else { throw ValidationError("non-finite latent") }
          BenchSupport.emit(
            BenchRow(
              name: "vae-encode-\(side)x\(side)\(suffix)", seconds: seconds, flops: vae.flopCounter.flops,
              sgemmGflops: sgemm, pass: pass, detail: detail), json: json)
        }
      }
      let latent = BenchSupport.randomTensor([1, 4, side / 8, side / 8], seed: 22)
      for pass in 0..<passes {
        vae.flopCounter.reset()
        let start = Date()
        let image = try tiled?.decode(latent, runner: runner(tile / 8)) ?? vae.decode(latent)
        let seconds = Date().timeIntervalSince(start)
        if compare, tiled != nil {
          let reference = try vae.decode(latent)
          print(
            "vae-decode-\(side)x\(side)\(suffix): max pixel error vs untiled \(Self.maxDifference(image, reference) / 2)"
          )
        }
        guard image.data.allSatisfy(\.isFinite) else { throw ValidationError("non-finite image") }
        BenchSupport.emit(
          BenchRow(
            name: "vae-decode-\(side)x\(side)\(suffix)", seconds: seconds, flops: vae.flopCounter.flops,
            sgemmGflops: sgemm, pass: pass, detail: detail), json: json)
      }
    }
  }
}
