"""Stage 2: the KL-f8 VAE in the SDXL (LDM) key layout, 4 latent channels.

Colour (the previous attempt's VAE lost it; flat red, green and blue crops encoded to one latent):
- GroupNorm with as many groups as channels is an instance norm per channel: a flat crop gives a
  spatially constant feature per channel, which that norm maps to its bias whatever the colour. Both
  the encoder's norm_out and every ResnetBlock norm see this. The mini therefore uses 4 groups
  (8-16 channels per group), shipped as `cogflow.json` {"groups": 4}; the relative pattern across the
  channels of a group, which encodes the colour, survives the norm.
- Every scene crop is centred on a shape (saturated colour in every crop; scenes are mostly grey
  background), and every batch holds two flat crops (a shape colour, a random colour).
- The posterior starts nearly deterministic (log-variance bias −8 in quant_conv): with the default
  init its std is 1 against a mean of ~0.1, the decoder sees mostly noise and learned only luminance
  in the first hundreds of steps.
- A chroma term (L1 of the error minus its grey part, weight VAE_CHROMA = 1) adds weight to colour.
- The reconstruction loss is L1 + MSE in the RGB space the UNets see ([-1, 1]); the KL weight is
  small (1e-6 per element, as LDM's f8 VAEs), so it cannot wash the latent out.
- `colour_check()` encodes flat crops and checks (a) that pure red/green/blue/white/black get latent
  means apart and (b) that decode(encode(x)) keeps each colour of the world's palette (mean abs error
  per channel; the pure primaries' errors are logged too, they lie outside the palette). It runs before
  training on the untrained network (architecture check: the latents must already differ) and after
  training (reconstruction check); the stage fails if the trained check fails.

After training, the latent is calibrated: the encoder's mean half of quant_conv is scaled by a, the
log-variance half shifted by 2·ln a and post_quant_conv divided by a — the same decoder on a rescaled
latent — so that std(z·0.13025) ≈ 1, the scale the fixed official scale_factor assumes.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from common import BASE_SIZE, atomic_save, ckpt_root, RELAY_SIZE, Ema, Trainer, device, log, mark_done, scenes, setup_threads
from models import SCALE_FACTOR, VAE_DEFAULTS, AutoencoderKL, count

STAGE = "vae"
STEPS = int(os.environ.get("VAE_STEPS", "3000"))
BATCH = int(os.environ.get("VAE_BATCH", "12"))
CROP = 32
KL_WEIGHT = 1e-6
LOGVAR_INIT = float(os.environ.get("VAE_LOGVAR_INIT", "-8"))
CHROMA_WEIGHT = float(os.environ.get("VAE_CHROMA", "1"))
FLAT = {"red": (1, -1, -1), "green": (-1, 1, -1), "blue": (-1, -1, 1), "white": (1, 1, 1), "black": (-1, -1, -1)}


@torch.no_grad()
def colour_check(vae: AutoencoderKL, dev, size: int = 32) -> dict:
    """Flat crops through encode → decode: `separation` of the pure primaries' mean latents (smallest
    pairwise distance / latent std), `worst_error` over the world's palette (the seven shape colours
    and the five backgrounds, which the gate uses), and the primaries' errors for the record. Errors
    are the worst channel of mean |decode(encode(x)) − x|, in [-1, 1] units."""

    def run(colours: list) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.tensor(colours, dtype=torch.float32, device=dev)[:, :, None, None].expand(-1, -1, size, size)
        mean, _ = vae.moments(x)
        rec = vae.decode(mean * SCALE_FACTOR).clamp(-1, 1)
        return mean.mean(dim=(2, 3)), (rec - x).abs().mean(dim=(2, 3)).max(dim=1).values

    m, prim_err = run(list(FLAT.values()))
    sep = (torch.cdist(m, m) + torch.eye(len(FLAT), device=dev) * 1e9).min().item() / (m.std().item() + 1e-12)
    palette = {**scenes.COLOURS, **scenes.BACKGROUNDS}
    _, err = run([[c / 127.5 - 1 for c in rgb] for rgb in palette.values()])
    worst = max(palette, key=lambda k: err[list(palette).index(k)].item())
    return {
        "separation": round(sep, 4), "worst_error": round(err.max().item(), 4), "worst_colour": worst,
        "palette_errors": {k: round(e, 3) for k, e in zip(palette, err.tolist()) if k in ("red", "green", "blue")},
        "primary_errors": dict(zip(FLAT, [round(e, 3) for e in prim_err.tolist()])),
    }


def crops(step: int, gen: torch.Generator) -> torch.Tensor:
    """BATCH 32² crops of scenes rendered at the base or the relay size, each centred (±8 px) on one of
    the scene's shapes, so every crop holds saturated colour and edges, not only background
    (deterministic in step)."""
    out = []
    for i in range(BATCH):
        size = BASE_SIZE if i % 2 == 0 else RELAY_SIZE
        scene = scenes.make_scene(step * BATCH + i)
        img = scenes.render(scene, size)
        o = scene.objects[int(torch.randint(0, len(scene.objects), (1,), generator=gen))]
        jy, jx = (int(v) - 8 for v in torch.randint(0, 17, (2,), generator=gen))
        cy, cx = int(scenes.ROWS[o.row] * size) + jy, int(scenes.COLS[o.col] * size) + jx
        y, x = (min(max(c - CROP // 2, 0), size - CROP) for c in (cy, cx))
        out.append(img[y : y + CROP, x : x + CROP])
    a = torch.from_numpy((np.stack(out).astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2).copy())
    # Two flat crops per batch (a named shape colour, and a random colour): colour fidelity is trained
    # directly, not only on the small share of shape pixels in a scene crop.
    named = torch.tensor(scenes.COLOURS[scenes.COLOUR_NAMES[step % len(scenes.COLOURS)]], dtype=torch.float32) / 127.5 - 1
    rand = torch.rand(3, generator=gen) * 2 - 1
    flat = torch.stack([named, rand])[:, :, None, None].expand(-1, -1, CROP, CROP)
    return torch.cat([a, flat])


@torch.no_grad()
def calibrate(vae: AutoencoderKL, dev) -> float:
    xs, _ = scenes.batch(range(10_000_000, 10_000_032), BASE_SIZE)
    mean, _ = vae.moments(torch.from_numpy(xs).to(dev))
    a = (1.0 / SCALE_FACTOR) / mean.std().item()
    z = vae.cfg["z_channels"]
    vae.quant_conv.weight[:z] *= a
    vae.quant_conv.bias[:z] *= a
    vae.quant_conv.bias[z:] += 2 * math.log(a)
    vae.post_quant_conv.weight /= a
    return a


def main() -> None:
    setup_threads()
    dev = device()
    torch.manual_seed(1102)
    vae = AutoencoderKL().to(dev)
    with torch.no_grad():  # posterior std starts at e^-4 ≈ 0.02 (log-variance bias −8), not 1: see the docstring
        vae.quant_conv.bias[vae.cfg["z_channels"] :] = LOGVAR_INIT
    first = colour_check(vae, dev)
    log(STAGE, f"{count(vae)} params {VAE_DEFAULTS}; colour check at init: {first}")
    if first["separation"] < 1e-3:
        raise SystemExit("vae: flat colours share one latent at init; the architecture erases colour (see the docstring)")
    opt = torch.optim.AdamW(vae.parameters(), lr=float(os.environ.get("VAE_LR", "2e-4")), weight_decay=0.0)
    ema = Ema(vae, 0.999)
    tr = Trainer(STAGE, vae, opt, ema, STEPS)
    gen = torch.Generator().manual_seed(7 + tr.step)
    while tr.step < STEPS:
        x = crops(tr.step, gen).to(dev)
        mean, logvar = vae.moments(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        rec = vae.decoder(vae.post_quant_conv(z))
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()
        err = rec - x
        chroma = (err - err.mean(dim=1, keepdim=True)).abs().mean()  # colour error without the grey part
        loss = err.abs().mean() + F.mse_loss(rec, x) + CHROMA_WEIGHT * chroma + KL_WEIGHT * kl * mean[0].numel()
        tr.optimise(loss, clip=None)
        if tr.step % int(os.environ.get("VAE_CHECK_EVERY", "100")) == 0:
            log(STAGE, f"colour check: {colour_check(vae, dev)}")
    tr.save()
    vae.load_state_dict(tr.weights())
    a = calibrate(vae, dev)
    final = colour_check(vae, dev)
    log(STAGE, f"calibrated latent by a={a:.4f}; colour check after training: {final}")
    atomic_save({"model": vae.state_dict(), "cfg": vae.cfg}, ckpt_root() / STAGE / "final.pt")
    ok = final["worst_error"] < float(os.environ.get("VAE_COLOUR_TOL", "0.25"))
    info = {"steps": STEPS, "calibration": a, "colour_init": first, "colour_final": final, "colour_ok": ok,
            "final_loss": sum(tr.losses[-50:]) / max(1, len(tr.losses[-50:]))}
    if not ok and os.environ.get("VAE_ALLOW_COLOUR_FAIL") != "1":
        raise SystemExit(f"vae: colour check failed after training: {final}; train longer (VAE_STEPS) or inspect")
    mark_done(STAGE, info)


if __name__ == "__main__":
    main()
