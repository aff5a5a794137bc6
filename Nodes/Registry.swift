import Workflow

/// The node types the CLI offers, sharing `pool` for their models (one pool per run: `WorkflowRunner` makes one).
/// Toy nodes (`toy.*`, Workflow/ToyNodes.swift) are added by the CLI only when `COGFLOW_TOY_NODES=1` or
/// `--toy-nodes` is given.
public func builtinRegistry(pool: ModelPool = ModelPool()) -> NodeRegistry {
  NodeRegistry([
    TextEncodeNode(pool: pool),
    BaseSampleNode(pool: pool),
    DecodeNode(pool: pool),
    UpsampleNode(),
    EncodeLatentNode(pool: pool),
    RelaySampleNode(pool: pool),
    TileNode(),
    LoadImageNode(),
    SaveImageNode(),
    LoadLatentNode(),
    SaveLatentNode(),
    LoadTextNode(),
    PromptExpandNode(),
  ])
}
