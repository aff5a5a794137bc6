import Workflow

/// The node types the CLI offers. The CogView3 nodes (text-encode, base-sample, decode, …) register here as
/// they land; until then the registry is empty. Toy nodes (`toy.*`, Workflow/ToyNodes.swift) are added by the
/// CLI only when `COGFLOW_TOY_NODES=1` or `--toy-nodes` is given.
public func builtinRegistry() -> NodeRegistry {
  NodeRegistry([PromptExpandNode()])
}
