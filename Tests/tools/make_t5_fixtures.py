#!/usr/bin/env python3
"""Make the T5 encoder parity fixtures under Tests/Fixtures/t5/ with transformers' T5EncoderModel.

1. small/: a T5 v1.1 encoder (gated-gelu, 32 buckets, max distance 128, eps 1e-6) at a small width
   with random weights, saved by `save_pretrained` (HF key layout, safetensors) in float32 and as a
   bfloat16 copy; inputs (2 × 150 ids, so that relative distances pass max_distance 128), the input
   and output of every block (forward hooks), and last_hidden_state, for both weight dtypes
   (the bf16 reference runs the bf16-rounded weights in float32, as the Swift encoder does).
2. fullwidth/: one T5-XXL-wide block (d_model 4096, 64 heads × 64, d_ff 10240) on 16 positions.
   Its 192M weights would be 770 MB, so they are not stored: both this script and the Swift test
   generate them from a counter-based hash (`hash_weights`, splitmix64), with values k/128·2^-s that
   bfloat16 holds exactly. The fixture stores the block input, the block output and the final-norm
   output (the encoder's last_hidden_state with a one-block model fed `inputs_embeds`).
3. buckets.safetensors: T5Attention._relative_position_bucket for relative positions −600…600.

Usage: python3 Tests/tools/make_t5_fixtures.py   (from the repository root; ~1 min, < 3 GB RAM)
"""

import json
import os
import sys

import numpy as np
import safetensors
import safetensors.torch
import torch
import transformers
from transformers import T5Config, T5EncoderModel
from transformers.models.t5.modeling_t5 import T5Attention

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "t5")
SEED = 20240601


def t5_config(**kw):
  base = dict(feed_forward_proj="gated-gelu", dropout_rate=0.0, layer_norm_epsilon=1e-6,
              relative_attention_num_buckets=32, relative_attention_max_distance=128,
              is_encoder_decoder=False, use_cache=False, tie_word_embeddings=False)
  base.update(kw)
  return T5Config(**base)


def capture_blocks(model):
  """Registers hooks that record each block's input hidden states and output hidden states."""
  record = {}
  hooks = []
  for i, block in enumerate(model.encoder.block):
    def pre(mod, args, kwargs, i=i):
      h = args[0] if args else kwargs["hidden_states"]
      record[f"block{i}.in"] = h.detach().clone()
    def post(mod, args, kwargs, out, i=i):
      h = out[0] if isinstance(out, tuple) else out
      record[f"block{i}.out"] = h.detach().clone()
    hooks.append(block.register_forward_pre_hook(pre, with_kwargs=True))
    hooks.append(block.register_forward_hook(post, with_kwargs=True))
  return record, hooks


def small_fixture():
  torch.manual_seed(SEED)
  cfg = t5_config(vocab_size=96, d_model=64, d_kv=16, num_heads=4, d_ff=96, num_layers=3)
  model = T5EncoderModel(cfg).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "layer_norm" in name:
        p.copy_(1 + 0.2 * torch.randn_like(p))
      elif "relative_attention_bias" in name:
        p.copy_(torch.randn_like(p))
      elif "shared" in name or "embed_tokens" in name:
        p.copy_(torch.randn_like(p))
      else:
        p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
  ids = torch.randint(0, cfg.vocab_size, (2, 150), generator=torch.Generator().manual_seed(SEED + 1))
  folder = os.path.join(OUT, "small")
  os.makedirs(folder, exist_ok=True)
  model.save_pretrained(folder, safe_serialization=True)
  os.rename(os.path.join(folder, "model.safetensors"), os.path.join(folder, "model-f32.safetensors"))
  # The bf16 copy: same keys, weights rounded to bfloat16.
  sd = {k: v.to(torch.bfloat16).contiguous() for k, v in safetensors.torch.load_file(
      os.path.join(folder, "model-f32.safetensors")).items()}
  safetensors.torch.save_file(sd, os.path.join(folder, "model-bf16.safetensors"), metadata={"format": "pt"})
  expected = {"input_ids": ids.to(torch.int64)}
  for tag in ["f32", "bf16"]:
    if tag == "bf16":
      model = model.to(torch.bfloat16).float()
    record, hooks = capture_blocks(model)
    with torch.no_grad():
      out = model(input_ids=ids).last_hidden_state
    for h in hooks:
      h.remove()
    expected[f"{tag}.last_hidden_state"] = out
    for k, v in record.items():
      expected[f"{tag}.{k}"] = v
  safetensors.torch.save_file({k: v.contiguous() for k, v in expected.items()},
                              os.path.join(folder, "expected.safetensors"))
  keys = sorted(safetensors.safe_open(os.path.join(folder, "model-f32.safetensors"), "pt").keys())
  return {"config": cfg.to_dict(), "tensor_keys": keys}


# ---- full-width block with hash-generated weights -------------------------------------------------

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)


def hash_weights(stream, count, scale_log2, offset=0.0):
  """count values (m − 128)/128 · 2^scale_log2 + offset, m = top byte of splitmix64((stream << 40) + i).

  The Swift twin is `T5FixtureWeights.values` in Tests/ModelsTests/T5Tests.swift."""
  out = np.empty(count, dtype=np.float32)
  chunk = 1 << 23
  with np.errstate(over="ignore"):
    for start in range(0, count, chunk):
      n = min(chunk, count - start)
      x = (np.uint64(stream) << np.uint64(40)) + np.arange(start, start + n, dtype=np.uint64)
      z = x * GOLDEN
      z ^= z >> np.uint64(30)
      z *= M1
      z ^= z >> np.uint64(27)
      z *= M2
      z ^= z >> np.uint64(31)
      m = (z >> np.uint64(56)).astype(np.int32)
      out[start:start + n] = ((m - 128).astype(np.float32) / 128.0) * np.float32(2.0 ** scale_log2) + np.float32(offset)
  return out


# (key, shape, stream, scale_log2, offset) of every tensor of the full-width block; norms are 1 ± 1 (k/128, exact in bf16).
def fullwidth_spec(d=4096, inner=4096, ff=10240, heads=64, buckets=32):
  p = "encoder.block.0."
  return [
      (p + "layer.0.layer_norm.weight", [d], 1, 0, 1.0),
      (p + "layer.0.SelfAttention.q.weight", [inner, d], 2, -6, 0.0),
      (p + "layer.0.SelfAttention.k.weight", [inner, d], 3, -6, 0.0),
      (p + "layer.0.SelfAttention.v.weight", [inner, d], 4, -6, 0.0),
      (p + "layer.0.SelfAttention.o.weight", [d, inner], 5, -6, 0.0),
      (p + "layer.0.SelfAttention.relative_attention_bias.weight", [buckets, heads], 6, 0, 0.0),
      (p + "layer.1.layer_norm.weight", [d], 7, 0, 1.0),
      (p + "layer.1.DenseReluDense.wi_0.weight", [ff, d], 8, -6, 0.0),
      (p + "layer.1.DenseReluDense.wi_1.weight", [ff, d], 9, -6, 0.0),
      (p + "layer.1.DenseReluDense.wo.weight", [d, ff], 10, -7, 0.0),
      ("encoder.final_layer_norm.weight", [d], 11, 0, 1.0),
  ]


def fullwidth_fixture():
  cfg = t5_config(vocab_size=8, d_model=4096, d_kv=64, num_heads=64, d_ff=10240, num_layers=1)
  with torch.device("meta"):
    model = T5EncoderModel(cfg)
  sd = {}
  for key, shape, stream, s, off in fullwidth_spec():
    sd[key] = torch.from_numpy(hash_weights(stream, int(np.prod(shape)), s, off).reshape(shape))
  sd["shared.weight"] = torch.zeros(8, 4096)
  sd["encoder.embed_tokens.weight"] = sd["shared.weight"]
  model.load_state_dict(sd, strict=True, assign=True)
  model.eval()
  for key, v in sd.items():  # every generated value is exact in bfloat16
    assert torch.equal(v.to(torch.bfloat16).float(), v), key
  x = torch.randn(1, 16, 4096, generator=torch.Generator().manual_seed(SEED + 2))
  record, hooks = capture_blocks(model)
  with torch.no_grad():
    out = model(inputs_embeds=x).last_hidden_state
  for h in hooks:
    h.remove()
  folder = os.path.join(OUT, "fullwidth")
  os.makedirs(folder, exist_ok=True)
  safetensors.torch.save_file({"input": x.contiguous(), "block0.out": record["block0.out"].contiguous(),
                               "last_hidden_state": out.contiguous()},
                              os.path.join(folder, "expected.safetensors"))
  # Spot values let the Swift generator be checked on its own before the block is compared.
  spot = {key: [float(hash_weights(stream, 5, s, off)[i]) for i in range(5)]
          for key, _, stream, s, off in fullwidth_spec()[:3]}
  return {"config": {k: cfg.to_dict()[k] for k in ["d_model", "d_kv", "num_heads", "d_ff", "num_layers",
                                                    "relative_attention_num_buckets",
                                                    "relative_attention_max_distance", "layer_norm_epsilon"]},
          "weights": [dict(key=k, shape=sh, stream=st, scale_log2=s, offset=o)
                      for k, sh, st, s, o in fullwidth_spec()],
          "spot_values": spot}


def buckets_fixture():
  rel = torch.arange(-600, 601, dtype=torch.long)
  b = T5Attention._relative_position_bucket(rel, bidirectional=True, num_buckets=32, max_distance=128)
  safetensors.torch.save_file({"relative_position": rel, "bucket": b.to(torch.int64)},
                              os.path.join(OUT, "buckets.safetensors"))


def main():
  torch.set_num_threads(2)
  os.makedirs(OUT, exist_ok=True)
  buckets_fixture()
  note = {
      "script": "Tests/tools/make_t5_fixtures.py",
      "command": "python3 Tests/tools/make_t5_fixtures.py",
      "seed": SEED,
      "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                   "safetensors": safetensors.__version__, "numpy": np.__version__,
                   "python": sys.version.split()[0]},
      "tolerance": "relative L2 <= 1e-5 per block, <= 1e-4 whole small model (float32)",
      "small": small_fixture(),
      "fullwidth": fullwidth_fixture(),
  }
  with open(os.path.join(OUT, "fixtures.json"), "w") as f:
    json.dump(note, f, indent=1)


if __name__ == "__main__":
  main()
