#!/usr/bin/env python3
"""Golden values for the Tensor kernels, computed with PyTorch (CPU, float32).

Writes Tests/Fixtures/tensor/golden.json: for each case the op, its parameters, the inputs and
PyTorch's output. Inputs come from torch.manual_seed(SEED) and are stored in the file, so the Swift
tests need no random generator to reproduce them.

Usage (from the repository root):  python3 Tests/tools/make_tensor_golden.py
Covers: F.interpolate(mode="bilinear", align_corners=False) incl. non-integer and down-scales,
nearest x2, GELU erf/tanh, SiLU, softmax, group/layer norm, T5 RMSNorm, conv2d (UNet/VAE paddings),
scaled dot-product attention, and the two sinusoidal embeddings of CogView3
(reference/cogview3-official.md §2.2 timestep_embedding, §7 guidance_scale_embedding, §11.3).
"""
import json
import math
import os
import platform

import numpy
import torch
import torch.nn.functional as F

SEED = 20261130
OUT = os.path.join(os.path.dirname(__file__), "..", "Fixtures", "tensor", "golden.json")


def t2j(t):
    t = t.detach().to(torch.float32).contiguous()
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


# The formulas below are written from reference/cogview3-official.md (they follow the operation
# order of sgm's util.timestep_embedding and sampling.guidance_scale_embedding so that float32
# rounding matches).
def timestep_embedding(t, dim, max_period=10000):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def guidance_scale_embedding(w, dim):
    w = w * 1000.0
    half = dim // 2
    c = torch.log(torch.tensor(10000.0)) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -c)
    args = w.to(torch.float32)[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


def main():
    torch.manual_seed(SEED)
    cases = []

    def add(name, op, params, inputs, output, tol):
        cases.append({"name": name, "op": op, "params": params,
                      "inputs": {k: t2j(v) for k, v in inputs.items()}, "output": t2j(output), "tol": tol})

    # Bilinear resize, align_corners=False, no antialias: up, down, non-integer and mixed scales.
    x = torch.randn(2, 3, 5, 7)
    for (h, w) in [(10, 14), (3, 4), (8, 11), (13, 6), (5, 7), (1, 1), (17, 23)]:
        y = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=False)
        add(f"resize_bilinear_{h}x{w}", "resizeBilinear", {"height": h, "width": w}, {"x": x}, y, 1e-6)
    x1 = torch.randn(1, 1, 1, 4)
    add("resize_bilinear_1row", "resizeBilinear", {"height": 3, "width": 9}, {"x": x1},
        F.interpolate(x1, size=(3, 9), mode="bilinear", align_corners=False), 1e-6)
    xn = torch.randn(1, 2, 3, 4)
    add("upsample_nearest2x", "upsampleNearest2x", {}, {"x": xn}, F.interpolate(xn, scale_factor=2, mode="nearest"), 0)

    # Activations on a grid that includes the tails.
    g = torch.cat([torch.linspace(-12, 12, 481), torch.randn(64) * 3, torch.tensor([0.0, -0.0, 1e-8, -1e-8])])
    add("gelu_erf", "gelu", {}, {"x": g}, F.gelu(g), 2e-6)
    add("gelu_tanh", "geluTanh", {}, {"x": g}, F.gelu(g, approximate="tanh"), 2e-6)
    add("silu", "silu", {}, {"x": g}, F.silu(g), 2e-6)
    gg = torch.randn(3, 2, 10)
    v, gate = gg.chunk(2, dim=-1)
    add("geglu", "geglu", {}, {"x": gg}, v * F.gelu(gate), 2e-6)
    s = torch.randn(4, 37) * 4
    add("softmax", "softmax", {}, {"x": s}, torch.softmax(s, dim=-1), 1e-6)

    # Norms (UNet eps 1e-5 / SpatialTransformer & VAE 1e-6, LayerNorm 1e-5, T5 RMSNorm 1e-6).
    xg = torch.randn(2, 12, 5, 3) * 2 + 0.5
    wg, bg = torch.randn(12), torch.randn(12)
    add("group_norm", "groupNorm", {"groups": 4, "eps": 1e-5}, {"x": xg, "weight": wg, "bias": bg},
        F.group_norm(xg, 4, wg, bg, eps=1e-5), 2e-6)
    xl = torch.randn(2, 3, 20) + 3
    wl, bl = torch.randn(20), torch.randn(20)
    add("layer_norm", "layerNorm", {"eps": 1e-5}, {"x": xl, "weight": wl, "bias": bl},
        F.layer_norm(xl, (20,), wl, bl, eps=1e-5), 2e-6)
    wr = torch.randn(20)
    # T5LayerNorm: x * rsqrt(mean(x^2) + eps) * weight, no mean subtraction, no bias.
    rms = xl * torch.rsqrt(xl.pow(2).mean(-1, keepdim=True) + 1e-6) * wr
    add("rms_norm", "rmsNorm", {"eps": 1e-6}, {"x": xl, "weight": wr}, rms, 2e-6)

    # Convolutions: 3x3 pad 1, 3x3 stride 2 pad 1 (UNet downsample), VAE downsample
    # (F.pad (0,1,0,1) then stride 2 pad 0), 1x1.
    xc = torch.randn(2, 3, 9, 8)
    wc, bc = torch.randn(4, 3, 3, 3), torch.randn(4)
    add("conv3x3_s1_p1", "conv2d", {"stride": 1, "top": 1, "bottom": 1, "left": 1, "right": 1},
        {"x": xc, "weight": wc, "bias": bc}, F.conv2d(xc, wc, bc, stride=1, padding=1), 1e-5)
    add("conv3x3_s2_p1", "conv2d", {"stride": 2, "top": 1, "bottom": 1, "left": 1, "right": 1},
        {"x": xc, "weight": wc, "bias": bc}, F.conv2d(xc, wc, bc, stride=2, padding=1), 1e-5)
    add("conv3x3_vae_down", "conv2d", {"stride": 2, "top": 0, "bottom": 1, "left": 0, "right": 1},
        {"x": xc, "weight": wc, "bias": bc}, F.conv2d(F.pad(xc, (0, 1, 0, 1)), wc, bc, stride=2), 1e-5)
    w1 = torch.randn(5, 3, 1, 1)
    add("conv1x1", "conv2d", {"stride": 1, "top": 0, "bottom": 0, "left": 0, "right": 0},
        {"x": xc, "weight": w1}, F.conv2d(xc, w1), 1e-5)

    # Multi-head attention, [B, T, H*D] layout, default scale 1/sqrt(D), with and without a bias.
    B, Tq, Tk, H, D = 2, 7, 5, 3, 4
    q, k, vv = torch.randn(B, Tq, H * D), torch.randn(B, Tk, H * D), torch.randn(B, Tk, H * D)

    def heads(t):
        return t.reshape(t.shape[0], t.shape[1], H, D).transpose(1, 2)

    o = F.scaled_dot_product_attention(heads(q), heads(k), heads(vv))
    add("attention", "attention", {"heads": H}, {"q": q, "k": k, "v": vv}, o.transpose(1, 2).reshape(B, Tq, H * D), 1e-5)
    bias = torch.randn(H, Tq, Tk)
    o = F.scaled_dot_product_attention(heads(q), heads(k), heads(vv), attn_mask=bias[None])
    add("attention_bias", "attention", {"heads": H}, {"q": q, "k": k, "v": vv, "bias": bias},
        o.transpose(1, 2).reshape(B, Tq, H * D), 1e-5)

    # Sinusoidal embeddings (reference §2.2, §7, §11.3). Large arguments (t up to 999, w·1000 = 7500)
    # amplify 1-ulp differences in the frequencies; the tolerance reflects that.
    ts = torch.tensor([0.0, 1.0, 17.0, 249.0, 512.0, 999.0])
    add("timestep_320", "timestep", {"dim": 320}, {"t": ts}, timestep_embedding(ts, 320), 1e-4)
    sizes = torch.tensor([512.0, 1024.0, 0.0])
    add("timestep_256", "timestep", {"dim": 256}, {"t": sizes}, timestep_embedding(sizes, 256), 1e-4)
    add("timestep_odd", "timestep", {"dim": 7}, {"t": ts}, timestep_embedding(ts, 7), 1e-4)
    ws = torch.tensor([7.5, 1.0, 3.25])
    add("guidance_512", "guidance", {"dim": 512}, {"w": ws}, guidance_scale_embedding(ws, 512), 1e-3)
    add("guidance_256", "guidance", {"dim": 256}, {"w": ws}, guidance_scale_embedding(ws, 256), 1e-3)

    meta = {
        "script": "Tests/tools/make_tensor_golden.py",
        "command": "python3 Tests/tools/make_tensor_golden.py",
        "seed": SEED,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "tolerance": "per case 'tol': max |swift - torch| <= tol * max(1, |torch|)",
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"meta": meta, "cases": cases}, f, separators=(",", ":"))
    print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
