import Foundation
import Tensor

/// One row of a key table: tensors whose name starts with `prefix` belong to model part `part`.
/// The networks are written with the checkpoint's own names, so the only rewrite is removing the
/// prefix when `strip` is set; `used` is false for parts CogFlow reads from elsewhere or never.
public struct KeyRule: Sendable, Hashable, Codable {
  public var prefix: String
  public var part: String
  public var strip: Bool
  public var used: Bool

  public init(_ prefix: String, part: String, strip: Bool, used: Bool = true) {
    self.prefix = prefix
    self.part = part
    self.strip = strip
    self.used = used
  }
}

/// Key remapping as data: which prefix of a checkpoint belongs to which model part. One table per
/// file family; the longest matching prefix wins.
public struct KeyTable: Sendable, Hashable, Codable {
  public var family: String
  public var rules: [KeyRule]

  public init(family: String, rules: [KeyRule]) {
    self.family = family
    self.rules = rules
  }

  /// The rule that claims `key` (longest prefix), or nil.
  public func rule(for key: String) -> KeyRule? {
    var best: KeyRule?
    for r in rules where key.hasPrefix(r.prefix) && r.prefix.count >= (best?.prefix.count ?? -1) { best = r }
    return best
  }

  /// The part and the name the network uses for `key`; nil when no rule claims it.
  public func map(_ key: String) -> (part: String, name: String)? {
    guard let r = rule(for: key) else { return nil }
    return (r.part, r.strip ? String(key.dropFirst(r.prefix.count)) : key)
  }

  /// Splits a source into one source per used part, names as the network expects them.
  public func split(_ source: any TensorSource) -> [String: any TensorSource] {
    var parts: [String: [String: String]] = [:]
    for key in source.keys {
      guard let r = rule(for: key), r.used else { continue }
      parts[r.part, default: [:]][r.strip ? String(key.dropFirst(r.prefix.count)) : key] = key
    }
    return parts.mapValues { RenamedTensorSource(source, names: $0) }
  }

  /// Keys no used rule claims, grouped by the claiming rule's prefix (or their first component).
  public func ignored(_ keys: [String]) -> [String: Int] {
    var out: [String: Int] = [:]
    for k in keys {
      if let r = rule(for: k), r.used { continue }
      out[rule(for: k)?.prefix ?? String(k.prefix { $0 != "." }) + ".", default: 0] += 1
    }
    return out
  }
}

/// The tables for the files CogView3 is published as (reference/cogview3-official.md §1.2, §9).
public enum KeyTables {
  /// SAT `mp_rank_00_model_states.pt['module']`: the sgm UNet under `model.diffusion_model.`; a SAT
  /// engine may also hold the first stage and the conditioner, which CogFlow loads from their own files.
  public static let sgmSAT = KeyTable(
    family: "sgm UNet (SAT checkpoint)",
    rules: [
      KeyRule("model.diffusion_model.", part: "unet", strip: true),
      KeyRule("first_stage_model.", part: "vae", strip: true, used: false),
      KeyRule("conditioner.", part: "conditioner", strip: false, used: false),
      KeyRule("denoiser.", part: "denoiser", strip: false, used: false),
      KeyRule("loss_fn.", part: "loss", strip: false, used: false),
    ])

  /// LDM autoencoder names (`sdxl_vae.safetensors`): used as they are; a `first_stage_model.` prefix
  /// (a full SD/SGM checkpoint) is stripped; the training-only `loss.` (discriminator, LPIPS) is ignored.
  public static let ldmVAE = KeyTable(
    family: "LDM autoencoder (SDXL VAE)",
    rules: [
      KeyRule("encoder.", part: "vae", strip: false),
      KeyRule("decoder.", part: "vae", strip: false),
      KeyRule("quant_conv.", part: "vae", strip: false),
      KeyRule("post_quant_conv.", part: "vae", strip: false),
      KeyRule("first_stage_model.", part: "vae", strip: true),
      KeyRule("loss.", part: "loss", strip: false, used: false),
    ])

  /// Hugging Face `T5EncoderModel`/`T5ForConditionalGeneration` names: the encoder stack and the shared
  /// embedding are used as named; a full seq2seq file's decoder and LM head are ignored.
  public static let hfT5 = KeyTable(
    family: "Hugging Face T5",
    rules: [
      KeyRule("shared.", part: "t5", strip: false),
      KeyRule("encoder.", part: "t5", strip: false),
      KeyRule("decoder.", part: "t5-decoder", strip: false, used: false),
      KeyRule("lm_head.", part: "t5-decoder", strip: false, used: false),
    ])

  public static let all: [KeyTable] = [sgmSAT, ldmVAE, hfT5]
}

/// A source whose keys are renamed through a table (new name → name in the base source).
public struct RenamedTensorSource: TensorSource {
  public let base: any TensorSource
  private let names: [String: String]
  public let keys: [String]

  public init(_ base: any TensorSource, names: [String: String]) {
    self.base = base
    self.names = names
    keys = names.keys.sorted()
  }

  public var location: String { base.location }
  public func stored(_ key: String) throws -> StoredTensor {
    guard let k = names[key] else { throw ModelIOError.missingTensor(path: location, key: key) }
    return try base.stored(k)
  }
  public func info(_ key: String) throws -> TensorInfo {
    guard let k = names[key] else { throw ModelIOError.missingTensor(path: location, key: key) }
    return try base.info(k)
  }
}
