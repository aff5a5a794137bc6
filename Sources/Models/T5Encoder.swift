import Foundation
import ModelIO
import Tensor

/// T5 v1.1 encoder configuration, named as in transformers' `T5Config` / `config.json`.
/// Defaults are T5-v1.1-XXL as shipped for CogView3 (official reference §1.2: CogVideoX-2b's
/// `text_encoder/config.json`).
public struct T5Config: Codable, Sendable, Hashable {
  public var vocabSize = 32128
  public var dModel = 4096
  /// Width of one attention head.
  public var dKV = 64
  public var numHeads = 64
  public var dFF = 10240
  public var numLayers = 24
  public var relativeAttentionNumBuckets = 32
  public var relativeAttentionMaxDistance = 128
  public var layerNormEpsilon: Float = 1e-6
  /// Only "gated-gelu" (T5 v1.1: gelu_new(wi_0 x) · wi_1 x) is implemented.
  public var feedForwardProj = "gated-gelu"

  /// T5-v1.1-XXL (4.76B parameters in the encoder with its 32128×4096 embedding).
  public static let xxl = T5Config()

  public init(
    vocabSize: Int = 32128, dModel: Int = 4096, dKV: Int = 64, numHeads: Int = 64, dFF: Int = 10240,
    numLayers: Int = 24, relativeAttentionNumBuckets: Int = 32, relativeAttentionMaxDistance: Int = 128,
    layerNormEpsilon: Float = 1e-6
  ) {
    self.vocabSize = vocabSize
    self.dModel = dModel
    self.dKV = dKV
    self.numHeads = numHeads
    self.dFF = dFF
    self.numLayers = numLayers
    self.relativeAttentionNumBuckets = relativeAttentionNumBuckets
    self.relativeAttentionMaxDistance = relativeAttentionMaxDistance
    self.layerNormEpsilon = layerNormEpsilon
  }

  enum CodingKeys: String, CodingKey {
    case vocabSize = "vocab_size"
    case dModel = "d_model"
    case dKV = "d_kv"
    case numHeads = "num_heads"
    case dFF = "d_ff"
    case numLayers = "num_layers"
    case relativeAttentionNumBuckets = "relative_attention_num_buckets"
    case relativeAttentionMaxDistance = "relative_attention_max_distance"
    case layerNormEpsilon = "layer_norm_epsilon"
    case feedForwardProj = "feed_forward_proj"
  }

  /// Reads an HF `config.json`; absent fields keep their XXL defaults, other fields are ignored.
  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = T5Config()
    vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
    dModel = try c.decodeIfPresent(Int.self, forKey: .dModel) ?? d.dModel
    dKV = try c.decodeIfPresent(Int.self, forKey: .dKV) ?? d.dKV
    numHeads = try c.decodeIfPresent(Int.self, forKey: .numHeads) ?? d.numHeads
    dFF = try c.decodeIfPresent(Int.self, forKey: .dFF) ?? d.dFF
    numLayers = try c.decodeIfPresent(Int.self, forKey: .numLayers) ?? d.numLayers
    relativeAttentionNumBuckets =
      try c.decodeIfPresent(Int.self, forKey: .relativeAttentionNumBuckets) ?? d.relativeAttentionNumBuckets
    relativeAttentionMaxDistance =
      try c.decodeIfPresent(Int.self, forKey: .relativeAttentionMaxDistance) ?? d.relativeAttentionMaxDistance
    layerNormEpsilon = try c.decodeIfPresent(Float.self, forKey: .layerNormEpsilon) ?? d.layerNormEpsilon
    feedForwardProj = try c.decodeIfPresent(String.self, forKey: .feedForwardProj) ?? d.feedForwardProj
  }

  /// Reads an HF `config.json` file.
  public init(configFile path: String) throws {
    do {
      self = try JSONDecoder().decode(T5Config.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
    } catch {
      throw T5Error.badConfig(path: path, reason: "\(error)")
    }
  }

  /// Attention width (heads × head width); 4096 for XXL.
  public var innerDim: Int { numHeads * dKV }

  /// Every encoder tensor and its shape, HF key names; the embedding under `embeddingKey`.
  public func expectedWeights(embeddingKey: String = "shared.weight") -> [String: [Int]] {
    var w: [String: [Int]] = [embeddingKey: [vocabSize, dModel], "encoder.final_layer_norm.weight": [dModel]]
    for i in 0..<numLayers {
      let p = "encoder.block.\(i).layer."
      for m in ["q", "k", "v"] { w[p + "0.SelfAttention.\(m).weight"] = [innerDim, dModel] }
      w[p + "0.SelfAttention.o.weight"] = [dModel, innerDim]
      w[p + "0.layer_norm.weight"] = [dModel]
      w[p + "1.DenseReluDense.wi_0.weight"] = [dFF, dModel]
      w[p + "1.DenseReluDense.wi_1.weight"] = [dFF, dModel]
      w[p + "1.DenseReluDense.wo.weight"] = [dModel, dFF]
      w[p + "1.layer_norm.weight"] = [dModel]
    }
    w["encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = [relativeAttentionNumBuckets, numHeads]
    return w
  }

  /// Parameter count of the encoder (embedding included).
  public var parameterCount: Int { expectedWeights().values.reduce(0) { $0 + $1.elementCount } }

  /// Multiply-add FLOPs (2 per MAC) of one encoder pass over `batch × tokens`, counting the matrix
  /// products only (projections, scores, weighted values, feed-forward); norms and softmax are ignored.
  public func flops(tokens t: Int, batch: Int = 1) -> Double {
    let (d, inner, ff) = (Double(dModel), Double(innerDim), Double(dFF))
    let tt = Double(t)
    let perLayer = 2 * tt * (4 * d * inner + 3 * d * ff) + 2 * 2 * tt * tt * inner
    return Double(batch) * Double(numLayers) * perLayer
  }

  /// T5's bidirectional relative-position bucket of `relative = key position − query position`
  /// (transformers `T5Attention._relative_position_bucket`, from Mesh TensorFlow): half the buckets
  /// for each sign; below half of those, one bucket per distance; above, logarithmic bins up to
  /// `maxDistance`, computed in float32 as PyTorch does so that bin edges land identically.
  public func relativePositionBucket(_ relative: Int) -> Int {
    let half = relativeAttentionNumBuckets / 2
    let base = relative > 0 ? half : 0
    let n = abs(relative)
    let maxExact = half / 2
    if n < maxExact { return base + n }
    let ratio = Float(n) / Float(maxExact)
    let denom = Float(Foundation.log(Double(relativeAttentionMaxDistance) / Double(maxExact)))
    let large = maxExact + Int(Foundation.log(ratio) / denom * Float(half - maxExact))
    return base + min(large, half - 1)
  }
}

/// Errors of the T5 encoder beyond weight mismatches (`WeightMismatchError`).
public enum T5Error: Error, Equatable, CustomStringConvertible {
  case badConfig(path: String, reason: String)
  case unsupported(String)
  case tokenOutOfRange(id: Int, vocabSize: Int)
  case badInput(String)

  public var description: String {
    switch self {
    case .badConfig(let path, let reason): return "\(path): cannot read the T5 configuration: \(reason)"
    case .unsupported(let what): return "T5 encoder: \(what) is not supported"
    case .tokenOutOfRange(let id, let vocab): return "T5 encoder: token id \(id) is outside the vocabulary 0..<\(vocab)"
    case .badInput(let what): return "T5 encoder: \(what)"
    }
  }
}

/// The T5 v1.1 encoder (transformers `T5EncoderModel`, float32 compute): embedding → N blocks of
/// [RMSNorm → self-attention with a relative-position bias and no 1/√d scaling → residual,
/// RMSNorm → gated-GELU(tanh) feed-forward → residual] → final RMSNorm. The position bias is made by
/// block 0's table and shared by all blocks. No attention mask: CogView3 lets the padding attend.
///
/// Weights stay in the source in their stored dtype (memory-mapped for files) and are widened to
/// float32 a block of rows at a time when used (see `linear`), so the widened working set is a few MB;
/// `keepWidened` widens each matrix whole once and keeps it for later passes instead (≈ 19 GB for XXL).
public final class T5Encoder: @unchecked Sendable {
  public let config: T5Config
  public let weights: any TensorSource
  /// `shared.weight`, or `encoder.embed_tokens.weight` when only the tied copy was saved.
  public let embeddingKey: String
  public let keepWidened: Bool
  private var widened: [String: Tensor] = [:]
  private let lock = NSLock()

  /// Checks every key and shape of `weights` against `config` before anything runs; keys of a full
  /// encoder–decoder checkpoint (`decoder.*`, `lm_head.*`) and the tied embedding copy are ignored.
  public init(config: T5Config = .xxl, weights: any TensorSource, keepWidened: Bool = false) throws {
    let dims = [
      config.vocabSize, config.dModel, config.dKV, config.numHeads, config.dFF, config.numLayers,
      config.relativeAttentionNumBuckets, config.relativeAttentionMaxDistance,
    ]
    guard dims.allSatisfy({ $0 > 0 }), config.relativeAttentionNumBuckets >= 4 else {
      throw T5Error.badInput("configuration sizes must be positive (and at least 4 buckets): \(config)")
    }
    guard config.feedForwardProj == "gated-gelu" else {
      throw T5Error.unsupported("feed_forward_proj '\(config.feedForwardProj)' (only gated-gelu, T5 v1.1)")
    }
    self.config = config
    self.weights = weights
    self.keepWidened = keepWidened
    let keys = Set(weights.keys)
    embeddingKey =
      keys.contains("shared.weight") || !keys.contains("encoder.embed_tokens.weight")
      ? "shared.weight" : "encoder.embed_tokens.weight"
    let tied: Set<String> = ["shared.weight", "encoder.embed_tokens.weight"]
    try KeyCheck.verify(
      expected: config.expectedWeights(embeddingKey: embeddingKey), source: weights,
      model: "T5 encoder (d_model \(config.dModel), \(config.numLayers) layers, \(config.numHeads) heads, "
        + "d_ff \(config.dFF), vocab \(config.vocabSize))",
      ignoring: { tied.contains($0) || $0.hasPrefix("decoder.") || $0.hasPrefix("lm_head.") })
  }

  /// A weight widened to float32 (from the cache when `keepWidened`).
  func weight(_ key: String) throws -> Tensor {
    if keepWidened, let w = lock.withLock({ widened[key] }) { return w }
    let w = try weights.tensor(key)
    if keepWidened { lock.withLock { widened[key] = w } }
    return w
  }

  /// Encodes token ids `[B][T]` (all rows the same length) to `last_hidden_state` `[B, T, d_model]`.
  public func encode(_ ids: [[Int]]) throws -> Tensor {
    var x = try embed(ids)
    let bias = try positionBias(length: ids[0].count)
    for i in 0..<config.numLayers { x = try block(i, x, bias: bias) }
    return try finalNorm(x)
  }

  /// Encodes one sequence: `[1, T, d_model]`.
  public func encode(_ ids: [Int]) throws -> Tensor { try encode([ids]) }

  /// Embedding rows `[B, T, d_model]`, widened one row at a time from the stored table.
  public func embed(_ ids: [[Int]]) throws -> Tensor {
    guard let t = ids.first?.count, t > 0, ids.allSatisfy({ $0.count == t }) else {
      throw T5Error.badInput("token rows must be non-empty and of equal length, got \(ids.map(\.count))")
    }
    let table = try weights.stored(embeddingKey)
    let d = config.dModel
    let rowBytes = d * table.dtype.byteSize
    var out = Tensor(zeros: [ids.count, t, d])
    for (r, id) in ids.joined().enumerated() {
      guard id >= 0, id < config.vocabSize else { throw T5Error.tokenOutOfRange(id: id, vocabSize: config.vocabSize) }
      let row = try StoredTensor(
        dtype: table.dtype, shape: [d], storage: table.storage, offset: table.offset + id * rowBytes
      ).toFloat32()
      out.data.withUnsafeMutableBufferPointer { o in
        row.withUnsafeBufferPointer { (o.baseAddress! + r * d).update(from: $0.baseAddress!, count: d) }
      }
    }
    return out
  }

  /// The relative-position bias `[H, T, T]` of block 0's table: bias[h, i, j] = table[bucket(j − i), h].
  public func positionBias(length t: Int) throws -> Tensor {
    let table = try weight("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
    let h = config.numHeads
    let buckets = (-(t - 1)...(t - 1)).map { config.relativePositionBucket($0) }
    return Tensor(uninitializedShape: [h, t, t]) { out in
      for head in 0..<h {
        for i in 0..<t {
          for j in 0..<t { out[(head * t + i) * t + j] = table.data[buckets[j - i + t - 1] * h + head] }
        }
      }
    }
  }

  /// One encoder block on `[B, T, d_model]` with the shared position bias `[H, T, T]`.
  public func block(_ index: Int, _ x: Tensor, bias: Tensor) throws -> Tensor {
    let p = "encoder.block.\(index).layer."
    let eps = config.layerNormEpsilon
    // Self-attention; T5 folds the 1/√d_kv scale into its initialisation, so scores are unscaled.
    let h = try Ops.rmsNorm(x, weight: weight(p + "0.layer_norm.weight"), eps: eps)
    let q = try linear(h, p + "0.SelfAttention.q.weight")
    let k = try linear(h, p + "0.SelfAttention.k.weight")
    let v = try linear(h, p + "0.SelfAttention.v.weight")
    let a = try Ops.attention(q: q, k: k, v: v, heads: config.numHeads, scale: 1, bias: bias)
    let y = try Ops.add(x, linear(a, p + "0.SelfAttention.o.weight"))
    // Gated-GELU feed-forward: gelu_new(wi_0 · h) ⊙ (wi_1 · h), then wo.
    let h2 = try Ops.rmsNorm(y, weight: weight(p + "1.layer_norm.weight"), eps: eps)
    let gate = Ops.geluTanh(try linear(h2, p + "1.DenseReluDense.wi_0.weight"))
    let up = try linear(h2, p + "1.DenseReluDense.wi_1.weight")
    return try Ops.add(y, linear(Ops.mul(gate, up), p + "1.DenseReluDense.wo.weight"))
  }

  /// Output rows of a weight widened per step of `linear`: 256 rows of a 4096-wide matrix are 4 MB,
  /// small enough to stay in cache between the widening and the GEMM that reads them.
  static let widenRows = 256

  /// `x · Wᵀ` for the stored weight `key` `[out, in]`. Unless `keepWidened`, the weight is widened
  /// `widenRows` output rows at a time into one reused buffer and each block's GEMM writes its columns
  /// of the result, so no whole float32 matrix exists (the same sums as one GEMM: each output element
  /// still runs over all of `in`).
  func linear(_ x: Tensor, _ key: String) throws -> Tensor {
    if keepWidened { return try Ops.linear(x, weight: weight(key), bias: nil) }
    return try Self.streamedLinear(x, weights.stored(key), name: key)
  }

  /// `x · Wᵀ` with `w` `[out, in]` widened `blockRows` rows at a time (the body of `linear`).
  static func streamedLinear(_ x: Tensor, _ w: StoredTensor, name: String, blockRows: Int = widenRows) throws
    -> Tensor
  {
    guard blockRows > 0 else { throw T5Error.badInput("blockRows must be positive, got \(blockRows)") }
    guard w.shape.count == 2, let inF = x.shape.last, inF == w.shape[1] else {
      throw T5Error.badInput("\(name) \(w.shape) does not fit an input of shape \(x.shape)")
    }
    let outF = w.shape[0]
    let rows = x.count / max(inF, 1)
    var out = Tensor(zeros: Array(x.shape.dropLast()) + [outF])
    var buffer = Tensor(zeros: [min(blockRows, outF), inF])
    var r0 = 0
    while r0 < outF {
      let n = min(blockRows, outF - r0)
      if n != buffer.shape[0] { buffer = Tensor(zeros: [n, inF]) }
      let src = w.storage.base + w.offset + r0 * inF * w.dtype.byteSize
      try buffer.withUnsafeMutableBufferPointer { b in
        guard let dst = b.baseAddress else { return }
        switch w.dtype {
        case .bf16: HalfConversion.widenBF16(src, count: n * inF, into: dst)
        case .f16: HalfConversion.widenF16(src, count: n * inF, into: dst)
        case .f32: dst.update(from: src.assumingMemoryBound(to: Float.self), count: n * inF)
        default:
          let block = try StoredTensor(
            dtype: w.dtype, shape: [n, inF], storage: w.storage, offset: src - w.storage.base)
          try block.toFloat32().withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: n * inF) }
        }
      }
      let y = try Ops.linear(x, weight: buffer, bias: nil)  // [rows, n]
      out.withUnsafeMutableBufferPointer { o in
        y.withUnsafeBufferPointer { yb in
          for r in 0..<rows { (o.baseAddress! + r * outF + r0).update(from: yb.baseAddress! + r * n, count: n) }
        }
      }
      r0 += n
    }
    return out
  }

  /// The final RMSNorm.
  public func finalNorm(_ x: Tensor) throws -> Tensor {
    try Ops.rmsNorm(x, weight: weight("encoder.final_layer_norm.weight"), eps: config.layerNormEpsilon)
  }
}
