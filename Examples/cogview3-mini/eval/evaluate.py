"""Table-1-style evaluation of CogView3-mini on the held-out prompts (one command; the table is written
by this script, never by hand):

    python3 eval/evaluate.py --models /work/cogview3-mini-ckpt/export [--count 24] [--out eval/RESULTS.md]

It loads the exported (fp16, official-layout) files, runs the PyTorch reference pipeline of
train/sampling.py with the seed convention of Workflows/README.md (seed = prompt index), and scores
every output with eval/detector.py against the held-out scene it was prompted with:
- adherence: colour+shape found (%), colour found (%), colour+shape+grid position (%);
- sharpness: RMS gradient of the final image (ground-truth renders at the same size for reference);
- fidelity: PSNR against the rendered ground-truth scene;
- seconds per image (PyTorch, CPU threads as set; the machine's load is printed with the table).
Rows: base only + bilinear ×2; base + relay (50 + 12 steps, CFG 7.5); direct sampling at the relay size
with the base model; distilled 4+1 and 8+2. A row whose models are not in --models is reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "train"))
import detector  # noqa: E402
import scenes  # noqa: E402
from models import AutoencoderKL, UNet  # noqa: E402
from sampling import generate  # noqa: E402

FOLDERS = {
    "base": "cogview3-base", "relay": "cogview3-relay", "base4": "cogview3-base-distill-4step",
    "base8": "cogview3-base-distill-8step", "relay2": "cogview3-relay-distill-2step",
    "relay1": "cogview3-relay-distill-1step",
}
ROWS = [
    ("base only + bilinear ×2", "base", ["base"]),
    ("base + relay SR (50 + 12 steps)", "relay", ["base", "relay"]),
    ("direct at relay size, base model (50 steps)", "direct", ["base"]),
    ("distilled 4 + 1", "distilled-4+1", ["base4", "relay1"]),
    ("distilled 8 + 2", "distilled-8+2", ["base8", "relay2"]),
]


def load_unet(folder: Path, vae_cfg=None) -> UNet:
    sd = torch.load(folder / "1" / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=True)["module"]
    sd = {k[len("model.diffusion_model."):]: v.float() for k, v in sd.items()}
    heads = json.loads((folder / "cogflow.json").read_text()).get("num_head_channels", 64)
    mc = sd["input_blocks.0.0.weight"].shape[0]
    levels = 1 + sum(1 for k in sd if k.endswith(".op.weight"))
    mult = []
    for k in sorted({int(k.split(".")[1]) for k in sd if k.startswith("input_blocks.") and ".in_layers.2.weight" in k}):
        mult.append(sd[f"input_blocks.{k}.0.in_layers.2.weight"].shape[0] // mc)
    nrb = len(mult) // levels
    cfg = dict(model_channels=mc, channel_mult=mult[::nrb], num_res_blocks=nrb, num_head_channels=heads,
               context_dim=next(v.shape[1] for k, v in sd.items() if k.endswith("attn2.to_k.weight")),
               guidance_embed_dim=sd["w_proj.weight"].shape[1] if "w_proj.weight" in sd else None)
    ds, att = 1, []
    for k in sorted({int(k.split(".")[1]) for k in sd if k.startswith("input_blocks.")}):
        if f"input_blocks.{k}.0.op.weight" in sd:
            ds *= 2
        elif f"input_blocks.{k}.1.norm.weight" in sd and ds not in att:
            att.append(ds)
    cfg["attention_resolutions"] = att
    net = UNet(**cfg)
    net.load_state_dict(sd)
    return net.eval()


def load_all(models: Path, dev) -> tuple[dict, object]:
    from transformers import T5EncoderModel, T5Tokenizer

    vdir = models / "cogview3-base-3b-vae"
    groups = json.loads((vdir / "cogflow.json").read_text()).get("groups", 32)
    vsd = {k: v.float() for k, v in load_file(str(vdir / "sdxl_vae.safetensors")).items()}
    ch = vsd["encoder.conv_in.weight"].shape[0]
    nlev = 1 + max(int(k.split(".")[2]) for k in vsd if k.startswith("encoder.down."))
    mult = [vsd[f"encoder.down.{i}.block.0.conv1.weight"].shape[0] // ch for i in range(nlev)]
    nrb = 1 + max(int(k.split(".")[4]) for k in vsd if k.startswith("encoder.down.0.block."))
    vae = AutoencoderKL(ch=ch, ch_mult=mult, num_res_blocks=nrb, groups=groups)
    vae.load_state_dict(vsd)
    out = {"vae": vae.to(dev).eval()}
    for key, folder in FOLDERS.items():
        if (models / folder / "latest").exists():
            out[key] = load_unet(models / folder).to(dev)
    t5dir = models / "t5-v1_1-xxl"
    tok = T5Tokenizer.from_pretrained(str(t5dir))
    t5 = T5EncoderModel.from_pretrained(str(t5dir), torch_dtype=torch.float32).to(dev).eval()

    @torch.no_grad()
    def encode(text: str) -> torch.Tensor:
        ids = tok([text], truncation=True, max_length=225, padding="max_length", return_tensors="pt").input_ids
        return t5(input_ids=ids.to(dev)).last_hidden_state

    return out, encode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="/work/cogview3-mini-ckpt/export")
    ap.add_argument("--count", type=int, default=24, help="held-out single-shape prompts")
    ap.add_argument("--caption", choices=["short", "long"], default="short")
    ap.add_argument("--out", default=str(HERE / "RESULTS.md"))
    ap.add_argument("--save-images", default=None, help="folder for the generated PNGs")
    a = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    base_size = int(os.environ.get("MINI_BASE_SIZE", "64"))
    models, encode = load_all(Path(a.models), dev)
    prompts = scenes.heldout_prompts(a.count)
    gt = [scenes.render(s, 2 * base_size) for s in prompts]
    gt_sharp = float(np.mean([detector.sharpness(g) for g in gt]))
    lines = [
        f"Held-out single-shape prompts: {a.count} ({a.caption} captions), seeds 0…{a.count - 1}; base {base_size}², "
        f"final {2 * base_size}². Ground-truth renders: sharpness {gt_sharp:.2f}.",
        f"Machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start (seconds are upper bounds "
        f"when loaded); device {dev}; PyTorch {torch.__version__} reference pipeline on the exported fp16 weights.",
        "",
        "| pipeline | colour+shape % | colour % | +position % | sharpness | PSNR vs GT (dB) | s / image |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, plan, need in ROWS:
        missing = [k for k in need if k not in models]
        if missing:
            lines.append(f"| {label} | not trained ({', '.join(FOLDERS[k] for k in missing)} missing) | | | | | |")
            continue
        scores, sharp, fid, secs = [], [], [], []
        for i, s in enumerate(prompts):
            ctx = encode(s.short if a.caption == "short" else s.long)
            t0 = time.time()
            img, _ = generate(models, ctx, i, base_size, plan)
            if plan == "base":
                img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False).clamp(0, 255).floor()
            secs.append(time.time() - t0)
            arr = img[0].permute(1, 2, 0).cpu().numpy().astype(np.uint8)
            if a.save_images:
                from PIL import Image

                Path(a.save_images).mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(Path(a.save_images) / f"{plan}-{i:03d}.png")
            scores.append(detector.adherence(arr, s))
            sharp.append(detector.sharpness(arr))
            fid.append(detector.psnr(arr, gt[i]))
        m = lambda k: 100 * float(np.mean([x[k] for x in scores]))  # noqa: E731
        lines.append(f"| {label} | {m('colour_shape'):.0f} | {m('colour'):.0f} | {m('position'):.0f} | "
                     f"{np.mean(sharp):.2f} | {np.mean(fid):.1f} | {np.mean(secs):.2f} |")
    text = "\n".join(lines) + "\n"
    Path(a.out).write_text("# CogView3-mini evaluation (written by eval/evaluate.py)\n\n"
                           f"Command: `python3 eval/evaluate.py --models {a.models} --count {a.count} --caption {a.caption}`\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()
