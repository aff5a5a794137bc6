import Foundation
import Tensor
import Workflow

/// `text-encode` (text → cond): T5 tokenizer (225 tokens, `</s>` then padding, no attention mask) and encoder,
/// official §2.1. The artifact holds only the conditional context; the zero unconditional one is derived by the
/// samplers.
public struct TextEncodeNode: ValidatingNodeType {
  let pool: ModelPool

  public init(pool: ModelPool) { self.pool = pool }

  public var spec: NodeTypeSpec {
    NodeTypeSpec(
      name: "text-encode", version: 1, doc: "T5 v1.1 encoder: text → 225×D context (official §2.1)",
      inputs: [PortSpec("text", Artifacts.text, doc: "the prompt")],
      outputs: [PortSpec("cond", Artifacts.cond, doc: "the conditional context [1, 225, D]")],
      params: [Params.model(ModelKind.t5.rawValue)], resource: .heavy)
  }

  public func validate(params: NodeParams) -> [String] { checkModel(params, "model", .t5) }

  public func run(inputs: NodeInputs, params: NodeParams, context: NodeContext) throws -> [String: Artifact] {
    let text = try inputs.required("text").text
    let t5 = try pool.textEncoder(try params.model("model").path)
    try context.checkCancelled()
    let ids = try t5.tokenizer.inputIds(text)
    let hidden = try t5.encoder.encode([ids])
    return ["cond": try Artifacts.encodeCond(hidden)]
  }
}
