import ArgumentParser
import Foundation
import ModelIO

/// `cogflow inspect PATH`: what a model file or folder holds, read from headers and the pickle only; for a PNG,
/// its structure, text chunks and CogFlow provenance (InspectPNG.swift).
struct InspectCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "inspect",
    abstract: "Show what a model file or folder holds and which CogView3 part it is, or what a PNG carries.",
    discussion: """
      PATH is a .safetensors file, a torch.save checkpoint, a SAT checkpoint folder (latest + \
      <iter>/mp_rank_00_model_states.pt) or a Hugging Face folder (config.json + safetensors). \
      Only headers and the pickle are read, so multi-gigabyte files answer at once. \
      A PNG (recognized by its signature) shows its size, colour type, bit depth, interlace, chunk list, text \
      chunks and the CogFlow provenance record that save-image embeds; --keys does not apply to it.
      """)

  @Argument(help: "The model file or folder, or a PNG image.") var path: String
  @Flag(help: "Print one JSON object instead of text.") var json = false
  @Flag(help: "Also list every tensor with its dtype and shape.") var keys = false

  func run() throws {
    if PNGReport.looksLikePNG(path) { return try Self.printPNG(path: path, json: json) }
    let summary = try ModelSummary(path: path)
    if json {
      let encoder = JSONEncoder()
      encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
      print(String(decoding: try encoder.encode(summary), as: UTF8.self))
    } else {
      print(Self.text(summary), terminator: "")
    }
    if keys {
      let (_, source) = try ModelFiles.open(path)
      let all = (source as? SATCheckpoint).map { $0.module as any TensorSource } ?? source
      for k in all.keys {
        let i = try all.info(k)
        print("\(k)\t\(i.dtype.rawValue)\t[\(i.shape.map(String.init).joined(separator: ", "))]")
      }
    }
  }

  static func text(_ s: ModelSummary) -> String {
    var out = "path: \(s.path)\nformat: \(s.format.rawValue)\n"
    for l in s.layout { out += "  \(l)\n" }
    out += "tensors: \(s.tensorCount)\n"
    out +=
      "dtypes: " + s.dtypes.sorted { $0.key < $1.key }.map { "\($0.key) × \($0.value)" }.joined(separator: ", ")
      + "\n"
    out += "parameters: \(grouped(s.parameters))\n"
    out += "bytes: \(grouped(s.bytes)) (\(String(format: "%.2f", Double(s.bytes) / 1_073_741_824)) GiB)\n"
    if s.recognized.isEmpty { out += "detected: nothing CogFlow recognizes\n" }
    for p in s.recognized {
      out += "detected: \(p.name)" + (p.prefix.isEmpty ? "" : " under '\(p.prefix)'") + "\n"
      switch p.kind {
      case .unet(let u):
        out +=
          "  in_channels \(u.inChannels), out_channels \(u.outChannels), model_channels \(u.modelChannels), "
          + "channel_mult \(u.channelMult), num_res_blocks \(u.numResBlocks)\n"
        out +=
          "  transformer_depth \(u.transformerDepth), middle depth \(u.middleDepth), context_dim "
          + "\(u.contextDim.map(String.init) ?? "-"), adm_in_channels \(u.admInChannels.map(String.init) ?? "-")"
          + (u.wProjDim.map { ", w_proj width \($0)" } ?? "") + "\n"
      case .vae(let v):
        out +=
          "  ch \(v.ch), ch_mult \(v.chMult), num_res_blocks \(v.numResBlocks), z_channels \(v.zChannels), "
          + "mid attention \(v.midAttention), quant_conv \(v.quantConv)\n"
      case .t5(let t):
        out +=
          "  d_model \(t.dModel), layers \(t.numLayers), heads \(t.numHeads), d_kv \(t.dKV), d_ff \(t.dFF)"
          + "\(t.gatedFF ? " (gated)" : ""), vocab \(t.vocabSize), relative buckets \(t.relativeAttentionBuckets)\n"
      }
    }
    if !s.ignoredPrefixes.isEmpty {
      out +=
        "ignored: "
        + s.ignoredPrefixes.sorted { $0.key < $1.key }.map { "\($0.key) (\($0.value) tensors)" }
        .joined(separator: ", ") + "\n"
    }
    return out
  }

  static func grouped(_ n: Int) -> String {
    let digits = Array(String(n))
    var out = ""
    for (i, d) in digits.enumerated() {
      if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
      out.append(d)
    }
    return out
  }
}
