#!/usr/bin/env python3
"""Make the tiny CogView3 model set under Tests/Fixtures/tiny-cogview3/ (tests only; NOT the built-in model).

Every part is in the official on-disk layout (../shared/reference/cogview3-official.md §1.1-1.2 and the
project's seed.md contract), built with the official classes and seeded random weights:
- t5-v1_1-xxl/: transformers' T5EncoderModel (T5 v1.1: gated-gelu, 32 buckets / max distance 128,
  eps 1e-6) at a tiny width, `save_pretrained` (config.json + model.safetensors), plus a SentencePiece
  Unigram spiece.model trained here on a generated English corpus with T5's special ids.
- cogview3-base/, cogview3-relay/, cogview3-base-distill-4step/, cogview3-relay-distill-1step/: the sgm
  UNetModel of THUDM/CogView3 (imported at run time from a checkout; none of its code is copied), saved
  as SAT folders: `latest` = "1" and `1/mp_rank_00_model_states.pt` = torch.save({'module': sd}) with
  keys `model.diffusion_model.*`, float16 (the official files are fp16), plus cogflow.json with the head
  width that the shapes cannot tell. The distilled UNets carry `w_proj` (width 512 base, 256 relay).
- cogview3-base-distill-8step/ and cogview3-relay-distill-2step/: their checkpoint is a symbolic link to
  the 4-step / 1-step file (the released 8-step and 2-step models have no config of their own; a copy would
  only add bytes).
- cogview3-base-3b-vae/sdxl_vae.safetensors: the sgm Encoder/Decoder + quant_conv/post_quant_conv in the
  SDXL/LDM key layout, float16.

Every layer gets seeded random values, including the ones sgm initialises to zero (zero_module out
layers, w_proj), and all values are float16-representable so the reference can compute in float32 on
exactly the stored numbers.

    python3 Tests/tools/make_tiny_cogview3.py /work/cogview3      (a THUDM/CogView3 checkout, commit d450a74)
"""
import json
import math
import os
import random
import shutil
import sys
import tempfile

import numpy as np
import safetensors
import sentencepiece as spm
import torch
import transformers
from safetensors.torch import save_file
from transformers import T5Config, T5EncoderModel, T5Tokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tokenizer_fixtures import COMMON, syllable_word  # noqa: E402  (the shared English word list)
from make_unet_vae_fixtures import fill_random, load_sgm  # noqa: E402  (checkout import + seeded weights)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "tiny-cogview3")
SEED = 20261207
REFERENCE = "THUDM/CogView3@d450a7412f843709d8acaea4c96f0464d154f609 sat/sgm (official classes)"

# The official base/relay UNet config (sat/configs/cogview3_base.yaml l.33-52), made tiny. Kept as in the
# yaml: adm_in_channels 1536, num_classes sequential, in/out 4, use_spatial_transformer, linear
# proj_in/out, legacy False. Changed for size: model_channels 32 (GroupNorm 32 groups needs ≥ 32),
# one level (channel_mult [1]; two levels would put the set over its 5 MB budget because adm 1536 ×
# time_embed 128 alone is 0.4 MB per UNet), num_res_blocks 1, attention at that level with depth 1 and
# a depth-1 middle transformer, num_head_channels 16 (2 heads; written to cogflow.json), context_dim =
# the tiny T5's d_model. attn type "softmax" instead of "softmax-xformers" (same math, no xformers
# here); use_checkpoint/use_fp16 have no effect on weights or inference and are left out.
UNET = dict(
    adm_in_channels=1536, num_classes="sequential", in_channels=4, out_channels=4, model_channels=32,
    attention_resolutions=[1], num_res_blocks=1, channel_mult=[1], num_head_channels=16,
    use_spatial_transformer=True, use_linear_in_transformer=True, transformer_depth=[1],
    transformer_depth_middle=1, context_dim=64, spatial_transformer_attn_type="softmax", legacy=False)
# w_proj widths of the released distilled configs (§7).
DISTILL_W = {"cogview3-base-distill-4step": 512, "cogview3-relay-distill-1step": 256}
LINKS = {"cogview3-base-distill-8step": "cogview3-base-distill-4step",
         "cogview3-relay-distill-2step": "cogview3-relay-distill-1step"}

# The SDXL VAE ddconfig (cogview3_base.yaml first_stage_config) made tiny: ch 32 (was 128), ch_mult
# [1, 1, 1, 1] (4 levels = f 8, as [1, 2, 4, 4]), num_res_blocks 1 (was 2); z 4, embed_dim 4, attention
# only in the middle (attn_resolutions []); "vanilla" for "vanilla-xformers" (same math).
VAE = dict(attn_type="vanilla", double_z=True, z_channels=4, resolution=256, in_channels=3, out_ch=3, ch=32,
           ch_mult=[1, 1, 1, 1], num_res_blocks=1, attn_resolutions=[], dropout=0.0)
EMBED_DIM = 4
SCALE_FACTOR = 0.13025

# T5 v1.1 (CogVideoX-2b text_encoder config) made tiny. vocab = the spiece pieces + 100 sentinels, rounded
# up to a multiple of 64 as T5's 32128 rounds 32100 (rows past the tokenizer are never indexed).
SPIECE_VOCAB = 300
T5 = dict(d_model=64, d_kv=16, num_heads=4, d_ff=128, num_layers=2, feed_forward_proj="gated-gelu",
          dropout_rate=0.0, layer_norm_epsilon=1e-6, relative_attention_num_buckets=32,
          relative_attention_max_distance=128, is_encoder_decoder=False, use_cache=False,
          tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)


def english_corpus(rng, n):
    """n lines of prompt-like English from the shared word list, a few made-up words and numbers."""
    lines = []
    for _ in range(n):
        words = []
        for _ in range(rng.randint(4, 20)):
            r = rng.random()
            w = rng.choice(COMMON) if r < 0.85 else syllable_word(rng) if r < 0.95 else str(rng.randint(0, 999))
            if rng.random() < 0.1:
                w = w.capitalize()
            words.append(w + ("," if rng.random() < 0.08 else ""))
        lines.append(" ".join(words) + ".")
    return lines


def normalization_rules():
    """A small custom normalization table (hex code points → hex code points, sentencepiece's TSV format).

    T5's own rule, nmt_nfkc, compiles to a 240 KB charsmap (the tokenizer fixtures already test it); this
    keeps the same mechanism (a precompiled charsmap in the model, read by the Swift tokenizer and by
    transformers) at a few KB: full-width ASCII → ASCII, tab/newline/CR/NBSP/ideographic space → space,
    the ligatures ﬁ/ﬂ and the ellipsis expanded, as NFKC + nmt do."""
    rules = [(0xFF01 + i, [0x21 + i]) for i in range(94)]
    rules += [(c, [0x20]) for c in (0x09, 0x0A, 0x0D, 0xA0, 0x3000)]
    rules += [(0xFB01, [0x66, 0x69]), (0xFB02, [0x66, 0x6C]), (0x2026, [0x2E, 0x2E, 0x2E])]
    return "".join(f"{src:X}\t{' '.join(f'{t:X}' for t in tgt)}\n" for src, tgt in rules)


def make_spiece(folder):
    options = dict(model_type="unigram", vocab_size=SPIECE_VOCAB, normalization_rule_name="custom (see normalization_rules)",
                   pad_id=0, eos_id=1, unk_id=2, bos_id=-1, byte_fallback=False, num_threads=1,
                   shuffle_input_sentence=False, character_coverage=1.0, max_sentence_length=8192)
    corpus = english_corpus(random.Random(SEED), 3000)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        # Relative names: the trainer stores them in the model, so the file does not depend on the temp path.
        os.chdir(tmp)
        try:
            with open("rules.tsv", "w") as f:
                f.write(normalization_rules())
            train = dict(options, normalization_rule_tsv="rules.tsv")
            del train["normalization_rule_name"]
            spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_prefix="spiece", **train)
        finally:
            os.chdir(cwd)
        shutil.copy(os.path.join(tmp, "spiece.model"), os.path.join(folder, "spiece.model"))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(folder, "spiece.model"))
    assert [sp.id_to_piece(i) for i in range(3)] == ["<pad>", "</s>", "<unk>"], "T5 special ids"
    return options, sp.get_piece_size()


def make_t5(folder):
    options, pieces = make_spiece(folder)
    tok = T5Tokenizer.from_pretrained(folder)
    vocab = (len(tok) + 63) // 64 * 64
    cfg = T5Config(vocab_size=vocab, **T5)
    torch.manual_seed(SEED + 1)
    model = T5EncoderModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif "relative_attention_bias" in name or "shared" in name or "embed_tokens" in name:
                p.copy_(torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
            p.copy_(p.half().float())
    model = model.half()
    model.save_pretrained(folder, safe_serialization=True)
    with safetensors.safe_open(os.path.join(folder, "model.safetensors"), "pt") as f:
        keys = sorted(f.keys())
    return dict(config={k: v for k, v in cfg.to_dict().items() if k in T5 or k == "vocab_size"},
                tokenizer=dict(trainer=options, pieces=pieces, hf_len=len(tok)), dtype="float16",
                tensors=len(keys))


def make_unet(unet_mod, folder, seed, w_dim):
    config = dict(UNET, **({"cfg_cond_embed_dim": w_dim} if w_dim else {}))
    model = unet_mod.UNetModel(**config).eval()
    fill_random(model, torch.Generator().manual_seed(seed))
    sd = {"model.diffusion_model." + k: v.half().contiguous() for k, v in model.state_dict().items()}
    os.makedirs(os.path.join(folder, "1"), exist_ok=True)
    with open(os.path.join(folder, "latest"), "w") as f:
        f.write("1")
    torch.save({"module": sd}, os.path.join(folder, "1", "mp_rank_00_model_states.pt"))
    write_json(os.path.join(folder, "cogflow.json"), {"num_head_channels": UNET["num_head_channels"]})
    return dict(config=config, seed=seed, dtype="float16", tensors=len(sd),
                params=sum(v.numel() for v in sd.values()))


def make_vae(vae_mod, folder, seed):
    enc = vae_mod.Encoder(**VAE).eval()
    dec = vae_mod.Decoder(**VAE).eval()
    container = torch.nn.Module()
    container.encoder, container.decoder = enc, dec
    container.quant_conv = torch.nn.Conv2d(2 * VAE["z_channels"], 2 * EMBED_DIM, 1)
    container.post_quant_conv = torch.nn.Conv2d(EMBED_DIM, VAE["z_channels"], 1)
    fill_random(container, torch.Generator().manual_seed(seed))
    os.makedirs(folder, exist_ok=True)
    sd = {k: v.half().contiguous() for k, v in container.state_dict().items()}
    save_file(sd, os.path.join(folder, "sdxl_vae.safetensors"), metadata={"format": "pt"})
    return dict(ddconfig=VAE, embed_dim=EMBED_DIM, scale_factor=SCALE_FACTOR, seed=seed, dtype="float16",
                tensors=len(sd), params=sum(v.numel() for v in sd.values()))


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_tiny_cogview3.py <path of a THUDM/CogView3 checkout>")
    torch.set_num_threads(2)
    unet_mod, _, vae_mod, _, _ = load_sgm(sys.argv[1])
    if os.path.isdir(OUT):
        for name in os.listdir(OUT):
            if name not in ("README.md",):
                path = os.path.join(OUT, name)
                shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
    os.makedirs(OUT, exist_ok=True)
    configs = {}
    t5_dir = os.path.join(OUT, "t5-v1_1-xxl")
    os.makedirs(t5_dir, exist_ok=True)
    configs["t5-v1_1-xxl"] = make_t5(t5_dir)
    seeds = {"cogview3-base": SEED + 10, "cogview3-relay": SEED + 20,
             "cogview3-base-distill-4step": SEED + 30, "cogview3-relay-distill-1step": SEED + 40}
    for name, seed in seeds.items():
        configs[name] = make_unet(unet_mod, os.path.join(OUT, name), seed, DISTILL_W.get(name))
    for name, target in LINKS.items():
        folder = os.path.join(OUT, name)
        os.makedirs(os.path.join(folder, "1"), exist_ok=True)
        shutil.copy(os.path.join(OUT, target, "latest"), os.path.join(folder, "latest"))
        shutil.copy(os.path.join(OUT, target, "cogflow.json"), os.path.join(folder, "cogflow.json"))
        os.symlink(os.path.join("..", "..", target, "1", "mp_rank_00_model_states.pt"),
                   os.path.join(folder, "1", "mp_rank_00_model_states.pt"))
        configs[name] = dict(same_file_as=target)
    configs["cogview3-base-3b-vae"] = make_vae(vae_mod, os.path.join(OUT, "cogview3-base-3b-vae"), SEED + 50)
    configs["_provenance"] = dict(
        script="Tests/tools/make_tiny_cogview3.py", command="python3 Tests/tools/make_tiny_cogview3.py /work/cogview3",
        reference=REFERENCE, seed=SEED,
        versions=dict(torch=torch.__version__.split("+")[0], transformers=transformers.__version__,
                      sentencepiece=spm.__version__, safetensors=safetensors.__version__,
                      numpy=np.__version__, python=sys.version.split()[0]))
    write_json(os.path.join(OUT, "configs.json"), configs)
    total = 0
    for base, _, files in os.walk(OUT):
        for name in sorted(files):
            path = os.path.join(base, name)
            if not os.path.islink(path):
                total += os.path.getsize(path)
                print(f"{os.path.relpath(path, OUT)}: {os.path.getsize(path)} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
