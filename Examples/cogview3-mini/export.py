"""Write the trained CogView3-mini in the official layouts (seed.md; cogview3-official.md §1.2, §9),
at half precision, so that `cogflow run … --models OUT` loads it through the same code as the real
CogView3 files:

    OUT/t5-v1_1-xxl/{config.json, model.safetensors, spiece.model}         HF T5EncoderModel folder
    OUT/cogview3-base/{latest, 1/mp_rank_00_model_states.pt, cogflow.json} SAT: {'module': {'model.diffusion_model.*'}}
    OUT/cogview3-relay/…, cogview3-base-distill-{4,8}step/…, cogview3-relay-distill-{1,2}step/…
    OUT/cogview3-base-3b-vae/{sdxl_vae.safetensors, cogflow.json}          LDM keys (encoder.*, decoder.*, quant_conv, …)

cogflow.json carries what shapes cannot tell: {"num_head_channels": 32} for the UNets, {"groups": 4}
for the VAE. The folder names are the official ones (the T5 folder keeps its official name although
the encoder inside is the mini's). Stages that have not finished are skipped and listed.

    python3 export.py [--ckpt /work/cogview3-mini-ckpt] [--out /work/cogview3-mini-ckpt/export]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent / "train"))

UNETS = {
    "base": "cogview3-base", "relay": "cogview3-relay", "distill-base-4": "cogview3-base-distill-4step",
    "distill-base-8": "cogview3-base-distill-8step", "distill-relay-2": "cogview3-relay-distill-2step",
    "distill-relay-1": "cogview3-relay-distill-1step",
}
PREFIX = "model.diffusion_model."


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def half(sd: dict) -> dict:
    return {k: v.detach().to(torch.float16).contiguous().clone() for k, v in sorted(sd.items())}


def export(ckpt: Path, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    done, skipped = [], []
    t5 = ckpt / "t5" / "t5-v1_1-mini"
    if (ckpt / "t5" / "DONE").exists():
        d = out / "t5-v1_1-xxl"
        d.mkdir(exist_ok=True)
        shutil.copyfile(t5 / "spiece.model", d / "spiece.model")
        cfg = json.loads((t5 / "config.json").read_text())
        cfg["torch_dtype"] = "float16"
        write_json(d / "config.json", cfg)
        save_file(half(load_file(str(t5 / "model.safetensors"))), str(d / "model.safetensors"), metadata={"format": "pt"})
        done.append("t5")
    else:
        skipped.append("t5")
    if (ckpt / "vae" / "DONE").exists():
        s = torch.load(ckpt / "vae" / "final.pt", map_location="cpu", weights_only=False)
        d = out / "cogview3-base-3b-vae"
        d.mkdir(exist_ok=True)
        save_file(half(s["model"]), str(d / "sdxl_vae.safetensors"), metadata={"format": "pt"})
        write_json(d / "cogflow.json", {"groups": s["cfg"]["groups"]})
        done.append("vae")
    else:
        skipped.append("vae")
    for stage, folder in UNETS.items():
        if not (ckpt / stage / "DONE").exists():
            skipped.append(stage)
            continue
        s = torch.load(ckpt / stage / "final.pt", map_location="cpu", weights_only=False)
        d = out / folder
        (d / "1").mkdir(parents=True, exist_ok=True)
        (d / "latest").write_text("1")
        module = {PREFIX + k: v for k, v in half(s["model"]).items()}
        tmp = d / "1" / "mp_rank_00_model_states.pt.tmp"
        torch.save({"module": module}, tmp)
        tmp.replace(d / "1" / "mp_rank_00_model_states.pt")
        write_json(d / "cogflow.json", {"num_head_channels": s["cfg"]["num_head_channels"]})
        done.append(stage)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {"exported": done, "skipped (not finished)": skipped, "bytes": size, "out": str(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default="/work/cogview3-mini-ckpt")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    ckpt = Path(a.ckpt)
    print(json.dumps(export(ckpt, Path(a.out) if a.out else ckpt / "export"), indent=1))


if __name__ == "__main__":
    main()
