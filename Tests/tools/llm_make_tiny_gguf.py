#!/usr/bin/env python3
"""Writes a tiny llama-architecture GGUF model with seeded random weights, for protocol tests against
llama.cpp's OpenAI-compatible server (llama-cpp-python's `llama_cpp.server`). The text it writes is noise: the
point is the HTTP/JSON protocol, not the prose.

  python3 Tests/tools/llm_make_tiny_gguf.py OUT.gguf [--seed 0]

Model: 2 blocks, width 64, 4 heads, FFN 128, context 8192, float32. Vocabulary: SentencePiece-style ("llama"
tokenizer): <unk>, <s>, </s>, the 256 byte-fallback tokens and the printable ASCII characters as pieces (space
as "▁"), so any prompt tokenizes. About 0.5 MB. Needs numpy and the `gguf` package (PyPI, from llama.cpp).
"""
import argparse

import numpy as np
import gguf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    tokens, scores, types = [], [], []

    def add(piece, score, kind):
        tokens.append(piece.encode("utf-8"))
        scores.append(score)
        types.append(kind)

    add("<unk>", 0.0, gguf.TokenType.UNKNOWN)
    add("<s>", 0.0, gguf.TokenType.CONTROL)
    add("</s>", 0.0, gguf.TokenType.CONTROL)
    for b in range(256):
        add(f"<0x{b:02X}>", 0.0, gguf.TokenType.BYTE)
    for c in range(0x20, 0x7F):
        add("\u2581" if c == 0x20 else chr(c), -1.0, gguf.TokenType.NORMAL)
    vocab = len(tokens)

    n_embd, n_head, n_ff, n_layer, n_ctx = 64, 4, 128, 2, 8192
    w = gguf.GGUFWriter(args.out, "llama")
    w.add_name("cogflow-tiny-random")
    w.add_context_length(n_ctx)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    def t(name, *shape, scale=0.02, ones=False):
        data = np.ones(shape, np.float32) if ones else (rng.standard_normal(shape) * scale).astype(np.float32)
        w.add_tensor(name, data)

    t("token_embd.weight", vocab, n_embd)
    for i in range(n_layer):
        t(f"blk.{i}.attn_norm.weight", n_embd, ones=True)
        t(f"blk.{i}.attn_q.weight", n_embd, n_embd)
        t(f"blk.{i}.attn_k.weight", n_embd, n_embd)
        t(f"blk.{i}.attn_v.weight", n_embd, n_embd)
        t(f"blk.{i}.attn_output.weight", n_embd, n_embd)
        t(f"blk.{i}.ffn_norm.weight", n_embd, ones=True)
        t(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        t(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
        t(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
    t("output_norm.weight", n_embd, ones=True)
    t("output.weight", vocab, n_embd, scale=1.0)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {args.out}: vocab {vocab}, {n_layer} blocks, width {n_embd}")


if __name__ == "__main__":
    main()
