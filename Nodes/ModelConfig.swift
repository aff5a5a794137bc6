import Foundation
import ModelIO
import Models
import Tensor

/// What a node expects a `model` parameter to hold.
public enum ModelKind: String, Sendable {
  case t5 = "a T5 encoder (Hugging Face folder with config.json, *.safetensors and spiece.model)"
  case unet = "a CogView3 UNet (SAT folder with latest + 1/mp_rank_00_model_states.pt, or safetensors)"
  case vae = "a KL autoencoder with LDM key names (e.g. sdxl_vae.safetensors)"
}

/// `cogflow.json`, the optional file next to the weights for what shapes cannot tell: in a SAT or HF folder, or
/// beside a single file (`DIR/cogflow.json` for `DIR/x.safetensors`). Absent fields keep the official values.
public struct CogFlowModelSettings: Codable, Sendable, Hashable {
  /// UNet attention head width (`num_head_channels`; official 64).
  public var num_head_channels: Int?
  /// GroupNorm groups (UNet and VAE; official 32).
  public var groups: Int?

  public static let fileName = "cogflow.json"

  public init(num_head_channels: Int? = nil, groups: Int? = nil) {
    self.num_head_channels = num_head_channels
    self.groups = groups
  }

  /// Reads the settings for the model at `path`; none when there is no file.
  public static func read(for path: String) throws -> CogFlowModelSettings {
    var isDir: ObjCBool = false
    FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
    let folder = isDir.boolValue ? path : (path as NSString).deletingLastPathComponent
    let file = (folder as NSString).appendingPathComponent(fileName)
    guard let data = FileManager.default.contents(atPath: file) else { return CogFlowModelSettings() }
    do {
      return try JSONDecoder().decode(CogFlowModelSettings.self, from: data)
    } catch {
      throw NodeError.model(
        field: "model", path: file,
        "cannot read \(fileName): \(error); expected e.g. {\"num_head_channels\": 64} or {\"groups\": 32}")
    }
  }
}

/// Model configurations inferred from checkpoint shapes (ModelIO's recognizer), plus `cogflow.json` for the rest.
public enum ModelConfig {
  /// The tensors of `path` viewed at the part of `kind` (prefix stripped), and that part's detected shape.
  static func open(_ path: String, kind: ModelKind, field: String) throws -> (any TensorSource, RecognizedPart) {
    let source: any TensorSource
    do {
      source = try ModelFiles.open(path).source
    } catch {
      throw NodeError.model(field: field, path: path, "expected \(kind.rawValue); cannot open it: \(error)")
    }
    let parts = ModelRecognizer.recognize(source)
    let match = parts.first { part in
      switch (part.kind, kind) {
      case (.unet, .unet), (.vae, .vae), (.t5, .t5): return true
      default: return false
      }
    }
    guard let part = match else {
      let found =
        parts.isEmpty
        ? "no CogView3 part among its \(source.keys.count) tensors"
        : parts.map { $0.name + ($0.prefix.isEmpty ? "" : " under '\($0.prefix)'") }.joined(separator: "; ")
      throw NodeError.model(field: field, path: path, "expected \(kind.rawValue), found \(found)")
    }
    let view: any TensorSource = part.prefix.isEmpty ? source : PrefixedTensorSource(source, stripping: part.prefix)
    return (view, part)
  }

  /// UNet configuration from shapes: widths, channel multipliers, blocks per level, transformer depth per level
  /// (attention at the levels whose depth is > 0), context and adm widths, w_proj width; head width and
  /// groups from `cogflow.json` (official 64 and 32).
  public static func unet(_ detected: DetectedUNet, settings: CogFlowModelSettings) -> UNetConfiguration {
    var c = UNetConfiguration()
    c.inChannels = detected.inChannels
    c.outChannels = detected.outChannels
    c.modelChannels = detected.modelChannels
    c.channelMult = detected.channelMult
    c.numResBlocks = detected.numResBlocks
    c.transformerDepth = detected.transformerDepth
    c.attentionResolutions = detected.transformerDepth.enumerated().filter { $0.element > 0 }.map { 1 << $0.offset }
    c.transformerDepthMiddle = detected.middleDepth
    if let context = detected.contextDim { c.contextDim = context }
    if let adm = detected.admInChannels { c.admInChannels = adm }
    c.guidanceEmbedDim = detected.wProjDim
    if let heads = settings.num_head_channels { c.numHeadChannels = heads }
    if let groups = settings.groups { c.groups = groups }
    return c
  }

  /// VAE configuration from shapes; groups from `cogflow.json` (official 32); scale factor the SDXL 0.13025.
  public static func vae(_ detected: DetectedVAE, settings: CogFlowModelSettings) -> AutoencoderConfiguration {
    var c = AutoencoderConfiguration()
    c.inChannels = detected.inChannels
    c.outChannels = detected.inChannels
    c.channels = detected.ch
    c.channelMult = detected.chMult
    c.numResBlocks = detected.numResBlocks
    c.zChannels = detected.zChannels
    c.embedDim = detected.zChannels
    c.midAttention = detected.midAttention
    if let groups = settings.groups { c.groups = groups }
    return c
  }

  /// Checks that `path` holds a model of `kind` (reads headers only): the validation-time check.
  public static func check(_ path: String, kind: ModelKind, field: String) throws {
    if kind == .t5 {
      try checkT5Folder(path, field: field)
    }
    _ = try open(path, kind: kind, field: field)
  }

  static func checkT5Folder(_ path: String, field: String) throws {
    for file in ["config.json", "spiece.model"] {
      guard FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent(file)) else {
        throw NodeError.model(field: field, path: path, "expected \(ModelKind.t5.rawValue); \(file) is missing")
      }
    }
  }

  // MARK: loading

  /// Opens `path` as `kind`, builds the model from the detected part and the settings file, and names the
  /// file in any failure.
  static func load<T>(
    _ path: String, kind: ModelKind, field: String,
    build: (any TensorSource, RecognizedPart.Kind, CogFlowModelSettings) throws -> T
  ) throws -> T {
    let (source, part) = try open(path, kind: kind, field: field)
    let settings = try CogFlowModelSettings.read(for: path)
    do {
      return try build(source, part.kind, settings)
    } catch {
      throw NodeError.model(field: field, path: path, "cannot build \(kind.rawValue) from it: \(error)")
    }
  }

  static func loadUNet(_ path: String, field: String) throws -> UNet {
    try load(path, kind: .unet, field: field) { source, part, settings in
      guard case .unet(let detected) = part else { throw NodeError.model(field: field, path: path, "not a UNet") }
      return try UNet(configuration: unet(detected, settings: settings), weights: source, name: "UNet at \(path)")
    }
  }

  static func loadVAE(_ path: String, field: String) throws -> Autoencoder {
    try load(path, kind: .vae, field: field) { source, part, settings in
      guard case .vae(let detected) = part else { throw NodeError.model(field: field, path: path, "not a VAE") }
      return try Autoencoder(
        configuration: vae(detected, settings: settings), weights: source, name: "VAE at \(path)")
    }
  }

  static func loadT5(_ path: String, field: String) throws -> TextEncoder {
    try checkT5Folder(path, field: field)
    do {
      let config = try T5Config(configFile: (path as NSString).appendingPathComponent("config.json"))
      let encoder = try T5Encoder(config: config, weights: try HFFolder(folder: path))
      let tokenizer = try T5Tokenizer(contentsOf: (path as NSString).appendingPathComponent("spiece.model"))
      return TextEncoder(encoder: encoder, tokenizer: tokenizer)
    } catch let error as NodeError {
      throw error
    } catch {
      throw NodeError.model(field: field, path: path, "cannot load the T5 encoder: \(error)")
    }
  }
}

/// T5 and its tokenizer, loaded together.
final class TextEncoder: @unchecked Sendable {
  let encoder: T5Encoder
  let tokenizer: T5Tokenizer
  init(encoder: T5Encoder, tokenizer: T5Tokenizer) {
    self.encoder = encoder
    self.tokenizer = tokenizer
  }
}
