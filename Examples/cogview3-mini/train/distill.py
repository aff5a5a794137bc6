"""Stages 5-8: progressive distillation with the guidance embedding (cogview3-official.md §7; paper §3.4).

    python3 distill.py base 8     # teacher: base UNet + CFG 7.5 on the 16-step grid, 2 teacher steps per student step
    python3 distill.py base 4     # teacher: the 8-step student (w = 7.5, no CFG), 2 steps per student step
    python3 distill.py relay 2    # teacher: relay UNet + CFG 7.5; student N=5 P=2 (t = 399 then 199, blur 1 then
                                  #   1/2: the plan of Workflows/distilled-8+2.yaml), 6 teacher steps per student step
    python3 distill.py relay 1    # teacher: the 2-step relay student; student N=5 P=1 (one step at t = 199,
                                  #   the released config), target = the teacher's 2-step output for the same ε

The student starts as a copy of its teacher plus a zero-initialised w_proj (Linear(w_dim → model
channels), no bias; w_dim 512 base, 256 relay, as the released configs) and is always run with w = 7.5.
Per training step: a data latent z0 (and, for relay, zL = encode(up(down(x)))), a random student grid
index j, the student's input x_j on the training distribution (base: z0 + σ_j·ε; relay: the blurred
F_k + σ_j·ε), the teacher's sub-steps from x_j to the student's next grid point, and the D that would
make one student step land there (inverting the Euler / relay update). For relay 2 the teacher's
sub-steps run between the student's grid points with σ at evenly spaced table indices and the blur
fraction interpolated linearly (`relay_blur_step`; the 24-point grid has no point at t = 399 or 199). Loss: (D_student − D_target)²/σ_j².
The relay 1-step student is trained from zL + σ(199)·ε against the teacher's full output from
zL + σ(399)·ε with the same ε.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from common import (
    BASE_SIZE, RELAY_SIZE, Ema, TextEncoder, Trainer, ckpt_root, device, log, pick_caption,
    require, scenes, setup_threads, t5_folder,
)
from diffusion import load_vae
from models import UNet, count, size_vector, step_grid
from sampling import SIGMAS, grid_sigmas, inverse_euler, inverse_relay, make_denoiser, relay_blur_step, relay_edm

STEPS = int(os.environ.get("DISTILL_STEPS", "1500"))
BATCH = int(os.environ.get("UNET_BATCH", "16"))
W = 7.5
TEACHER = {("base", 8): "base", ("base", 4): "distill-base-8", ("relay", 2): "relay", ("relay", 1): "distill-relay-2"}
W_DIM = {"base": 512, "relay": 256}
TEACHER_SUBSTEPS = 6


def load_unet(stage: str, dev) -> UNet:
    require(stage)
    s = torch.load(ckpt_root() / stage / "final.pt", map_location="cpu", weights_only=False)
    net = UNet(**s["cfg"])
    net.load_state_dict(s["model"])
    return net.to(dev)


def main(kind: str, n: int) -> None:
    setup_threads()
    dev = device()
    stage = f"distill-{kind}-{n}"
    te = TextEncoder(t5_folder(), dev)
    vae = load_vae(dev)
    teacher = load_unet(TEACHER[(kind, n)], dev).eval().requires_grad_(False)
    distilled_teacher = teacher.cfg["guidance_embed_dim"] is not None
    torch.manual_seed(1105 + n)
    student = UNet(**{**teacher.cfg, "guidance_embed_dim": W_DIM[kind]}).to(dev)
    missing = student.load_state_dict(teacher.state_dict(), strict=False)
    assert set(missing.missing_keys) <= {"w_proj.weight"}, missing
    log(stage, f"student {count(student)} params from teacher {TEACHER[(kind, n)]}, {STEPS} steps")
    opt = torch.optim.AdamW(student.parameters(), lr=float(os.environ.get("DISTILL_LR", "5e-5")), weight_decay=0.0)
    ema = Ema(student, 0.995)
    tr = Trainer(stage, student, opt, ema, STEPS)
    gen = torch.Generator().manual_seed(21 + tr.step + 1000 * n)
    size = BASE_SIZE if kind == "base" else RELAY_SIZE
    offset = {"base": 70_000_000, "relay": 80_000_000}[kind] + n * 1_000_000
    while tr.step < STEPS:
        x_np, sc = scenes.batch(range(offset + tr.step * BATCH, offset + (tr.step + 1) * BATCH), size)
        x = torch.from_numpy(x_np).to(dev)
        ctx = te([pick_caption(s, gen) for s in sc])
        y = size_vector(size, size, BATCH, dev)
        eps = torch.randn((BATCH, 4, size // 8, size // 8), generator=gen).to(dev)
        t_den = make_denoiser(teacher, ctx, y, None if distilled_teacher else W, W if distilled_teacher else None)
        s_den = make_denoiser(student, ctx, y, None, W)
        with torch.no_grad():
            z0 = vae.encode(x)
            if kind == "relay":
                low = F.interpolate(F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False),
                                    scale_factor=2, mode="bilinear", align_corners=False)
                zl = vae.encode(low)
        if kind == "base":
            sig = grid_sigmas(n)
            j = int(torch.randint(0, n, (), generator=gen))
            xj = z0 + sig[j] * eps
            with torch.no_grad():
                tsig = grid_sigmas(2 * n)
                xt = xj
                for i in (2 * j, 2 * j + 1):
                    d = t_den(xt, tsig[i])
                    xt = d if tsig[i + 1] == 0 else xt + (tsig[i + 1] - tsig[i]) * (xt - d) / tsig[i]
                target = inverse_euler(xj, xt, sig[j], sig[j + 1])
            sj = sig[j]
        elif n == 2:
            sig = grid_sigmas(5)  # student N=5, P=2: indices 3, 4 (t = 399, 199), k = 2, 1
            jj = int(torch.randint(0, 2, (), generator=gen))
            j, k = 3 + jj, 2 - jj
            xj = z0 + (k / 2) * (zl - z0) + sig[j] * eps
            with torch.no_grad():
                t0, t1 = step_grid(5)[j], (step_grid(5) + [-1])[j + 1]
                ts = np.linspace(t0, t1, TEACHER_SUBSTEPS + 1).round().astype(int)
                ss = [float(SIGMAS[t]) if t >= 0 else 0.0 for t in ts]
                bs = np.linspace(k / 2, (k - 1) / 2, TEACHER_SUBSTEPS + 1)
                xt = xj
                for i in range(TEACHER_SUBSTEPS):
                    xt = relay_blur_step(xt, t_den(xt, ss[i]), zl, ss[i], ss[i + 1], bs[i], bs[i + 1])
                target = inverse_relay(xj, xt, zl, sig[j], sig[j + 1], k, 2)
            sj = sig[j]
        else:
            sig = grid_sigmas(5)
            xj = zl + sig[4] * eps
            with torch.no_grad():
                target = relay_edm(t_den, zl, eps, 5, 2)
            sj = sig[4]
        d = s_den(xj, sj)
        loss = ((d - target) ** 2).mean() / sj**2
        tr.optimise(loss)
    tr.finish({"teacher": TEACHER[(kind, n)]})


if __name__ == "__main__":
    if len(sys.argv) != 3 or (sys.argv[1], int(sys.argv[2])) not in TEACHER:
        raise SystemExit("usage: python3 distill.py base 8|4  or  python3 distill.py relay 2|1")
    main(sys.argv[1], int(sys.argv[2]))
