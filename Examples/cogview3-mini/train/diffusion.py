"""Stages 3 and 4: the base UNet and the relay (super-resolution) UNet, same architecture (as CogView3).

    python3 diffusion.py base     # eps-prediction on LegacyDDPM, t ~ U{0..999}, images BASE_SIZE²
    python3 diffusion.py relay    # relay objective (§6.3), images RELAY_SIZE² (= 2 × base)

Both: EpsWeighting (σ^-2 on D, i.e. plain eps MSE), the 1536-wide size/crop vector y of the stage's
image size (crop 0,0), text dropped to an all-zero context 10% of the time (CogView3's unconditional
branch is a zero tensor), latents from the frozen, calibrated VAE (posterior sample × 0.13025).

Relay objective (cogview3-official.md §6.3, `LinearRelayDiffusionLoss(partial_num_steps=500,
offset_noise_level=0.05)`): t ~ U{0..499}; lr = encode(bilinear↑2(bilinear↓½(x))); blurred =
x0·(1 − t/500) + lr·t/500; input = blurred + σ_t·(noise + 0.05·per-sample-channel offset); target x0
through the eps denoiser, weight σ^-2.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F

from common import (
    BASE_SIZE, RELAY_SIZE, Ema, TextEncoder, Trainer, ckpt_root, device, log, pick_caption,
    require, scenes, setup_threads, t5_folder,
)
from models import UNET_DEFAULTS, AutoencoderKL, Denoiser, UNet, count, sigma_table, size_vector

BATCH = int(os.environ.get("UNET_BATCH", "16"))
STEPS = {"base": int(os.environ.get("BASE_STEPS", "6000")), "relay": int(os.environ.get("RELAY_STEPS", "4000"))}
P_UNCOND = 0.1


def load_vae(dev) -> AutoencoderKL:
    require("vae")
    s = torch.load(ckpt_root() / "vae" / "final.pt", map_location="cpu", weights_only=False)
    vae = AutoencoderKL(**s["cfg"])
    vae.load_state_dict(s["model"])
    return vae.to(dev).eval().requires_grad_(False)


def unet_config(te: TextEncoder) -> dict:
    return {**UNET_DEFAULTS, "context_dim": te.model.config.d_model}


def conditioning(te: TextEncoder, batch_scenes, gen: torch.Generator, size: int, dev):
    ctx = te([pick_caption(s, gen) for s in batch_scenes])
    drop = torch.rand(len(batch_scenes), generator=gen) < P_UNCOND
    ctx[drop.to(dev)] = 0.0
    return ctx, size_vector(size, size, len(batch_scenes), dev)


def main(kind: str) -> None:
    setup_threads()
    require("t5")
    dev = device()
    stage = kind
    steps = STEPS[kind]
    size = BASE_SIZE if kind == "base" else RELAY_SIZE
    te = TextEncoder(t5_folder(), dev)
    vae = load_vae(dev)
    torch.manual_seed(1103 if kind == "base" else 1104)
    net = UNet(**unet_config(te)).to(dev)
    log(stage, f"UNet {count(net)} params {net.cfg}, images {size}², batch {BATCH}")
    opt = torch.optim.AdamW(net.parameters(), lr=float(os.environ.get("UNET_LR", "3e-4")), weight_decay=0.0)
    ema = Ema(net, 0.999)
    tr = Trainer(stage, net, opt, ema, steps)
    sig = sigma_table().to(dev)
    den = Denoiser(sig)
    gen = torch.Generator().manual_seed(11 + tr.step + (0 if kind == "base" else 1 << 20))
    offset = 0 if kind == "base" else 50_000_000
    while tr.step < steps:
        seeds = range(offset + tr.step * BATCH, offset + (tr.step + 1) * BATCH)
        x_np, sc = scenes.batch(seeds, size)
        x = torch.from_numpy(x_np).to(dev)
        ctx, y = conditioning(te, sc, gen, size, dev)
        with torch.no_grad():
            z0 = vae.encode(x)
        noise = torch.randn(z0.shape, generator=gen).to(dev)
        if kind == "base":
            t = torch.randint(0, 1000, (BATCH,), generator=gen).to(dev)
            inp = z0 + sig[t].view(-1, 1, 1, 1) * noise
        else:
            with torch.no_grad():
                low = F.interpolate(F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False),
                                    scale_factor=2, mode="bilinear", align_corners=False)
                zl = vae.encode(low)
            t = torch.randint(0, 500, (BATCH,), generator=gen).to(dev)
            frac = (t.float() / 500).view(-1, 1, 1, 1)
            blurred = z0 * (1 - frac) + zl * frac
            off = torch.randn(BATCH, z0.shape[1], 1, 1, generator=gen).to(dev)
            inp = blurred + sig[t].view(-1, 1, 1, 1) * (noise + 0.05 * off)
        d = den(net, inp, sig[t], ctx, y)
        loss = ((d - z0) ** 2 / sig[t].view(-1, 1, 1, 1) ** 2).mean()
        tr.optimise(loss)
    tr.finish({"params": count(net), "image_size": size})


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in STEPS:
        raise SystemExit("usage: python3 diffusion.py base|relay")
    main(sys.argv[1])
