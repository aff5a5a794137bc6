"""Stage 1: SentencePiece tokenizer on the captions + a small T5 v1.1-style encoder (HF folder).

The encoder is FROZEN AT RANDOM INIT (seeded), not trained. Why: CogView3 freezes its T5, so the
diffusion models must learn to read a fixed text representation; a seeded random T5 v1.1 (gated-GELU,
relative position buckets, RMSNorm) already maps different captions to different, position-aware token
features, and every CPU minute is worth more in the VAE and UNets than in pre-training a text encoder
on a 300-word world. The weights are rounded to fp16 before anything uses them, so training sees
exactly the numbers that ship.

Output: <ckpt>/t5/t5-v1_1-mini/{spiece.model, config.json, model.safetensors}, and DONE.
"""

from __future__ import annotations

import json

import sentencepiece as spm
import torch

from common import ckpt_root, log, mark_done, scenes, t5_folder

STAGE = "t5"
CONFIG = dict(d_model=128, d_kv=32, num_heads=4, d_ff=256, num_layers=3, relative_attention_num_buckets=32,
              relative_attention_max_distance=128, feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6)


def main() -> None:
    out = t5_folder()
    out.mkdir(parents=True, exist_ok=True)
    corpus = ckpt_root() / STAGE / "captions.txt"
    with open(corpus, "w") as f:
        for i in range(6000):
            s = scenes.make_scene(i)
            f.write(s.short + "\n" + s.long + "\n")
        for s in scenes.heldout_prompts(200, single_only=False):  # words only; held-out pairs stay unseen in images
            f.write(s.short + "\n")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(out / "spiece"), vocab_size=400, model_type="unigram",
        character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>",
        unk_piece="<unk>", hard_vocab_limit=False, num_threads=1, minloglevel=2,
    )
    (out / "spiece.vocab").unlink(missing_ok=True)
    pieces = spm.SentencePieceProcessor(model_file=str(out / "spiece.model")).get_piece_size()

    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(1101)
    cfg = T5Config(vocab_size=pieces + 100, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **CONFIG)
    model = T5EncoderModel(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    model.save_pretrained(str(out), safe_serialization=True)
    cfgj = json.loads((out / "config.json").read_text())
    cfgj["torch_dtype"] = "float32"
    (out / "config.json").write_text(json.dumps(cfgj, indent=2, sort_keys=True) + "\n")
    n = sum(p.numel() for p in model.parameters())
    log(STAGE, f"tokenizer {pieces} pieces (+100 sentinels); T5 {n} params, frozen at seeded init")
    mark_done(STAGE, {"pieces": pieces, "params": n, "trained": False, "config": CONFIG})


if __name__ == "__main__":
    main()
