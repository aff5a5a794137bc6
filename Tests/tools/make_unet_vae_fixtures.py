#!/usr/bin/env python3
"""Parity fixtures for the CogView3 UNet and KL autoencoder (Tests/Fixtures/unet, Tests/Fixtures/vae).

The reference is the official sgm code of THUDM/CogView3 (sat/sgm), imported from a checkout whose
path is the first argument; none of its code is copied here. Only the module files the networks need
are loaded (the package __init__ files pull in training dependencies), by registering empty parent
packages that point at the checkout's folders.

    git -C <mirror> archive d450a7412f843709d8acaea4c96f0464d154f609 sat | tar -x -C /tmp/cogview3-src
    python3 Tests/tools/make_unet_vae_fixtures.py /tmp/cogview3-src

Fixtures:
- unet/small_weights.safetensors: a small UNet (model_channels 32, channel_mult [1, 2], attention at
  both levels, w_proj 16) with seeded random fp32 weights, saved under the SAT key names
  (`model.diffusion_model.` + sgm names); unet/small_io.safetensors: inputs and the official outputs.
- unet/st1280_io.safetensors: the output of one full-width SpatialTransformer (1280 channels, 20 heads,
  depth 1, context 4096 × 225 tokens) whose weights and inputs come from `formula()` below, which the
  Swift test reimplements bit-for-bit; storing the 40M weights would take 160 MB.
- vae/small_weights.safetensors + small_io.safetensors: a small KL autoencoder (ch 32, ch_mult [1, 2])
  with LDM key names; posterior mean/logvar/sample for a given noise, and a decode.
- vae/mid512_io.safetensors: an encoder-style middle (ResnetBlock 512 → AttnBlock 512 → ResnetBlock 512)
  with formula weights and input.
"""
import importlib
import json
import math
import os
import sys
import types

import numpy as np
import torch
from safetensors.torch import save_file

SEED = 20240607
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "Fixtures"))


def load_sgm(checkout):
    sat = os.path.join(checkout, "sat")
    if not os.path.isdir(os.path.join(sat, "sgm")):
        sys.exit(f"{checkout}: no sat/sgm folder (pass the path of a THUDM/CogView3 checkout)")
    sys.path.insert(0, sat)
    for name in ["sgm", "sgm.modules", "sgm.modules.diffusionmodules", "sgm.modules.distributions"]:
        pkg = types.ModuleType(name)
        pkg.__path__ = [os.path.join(sat, *name.split("."))]
        sys.modules[name] = pkg
    unet = importlib.import_module("sgm.modules.diffusionmodules.openaimodel")
    util = importlib.import_module("sgm.modules.diffusionmodules.util")
    vae = importlib.import_module("sgm.modules.diffusionmodules.model")
    attn = importlib.import_module("sgm.modules.attention")
    dist = importlib.import_module("sgm.modules.distributions.distributions")
    return unet, util, vae, attn, dist


# ---- the shared deterministic weight formula (mirrored by formulaValues in Tests/ModelsTests/UNetTests.swift) ----

def formula(n, seed):
    """n float32 values in [-1, 1): murmur3's fmix32 of (i·0x9E3779B9 + seed·0x85EBCA6B), top 24 bits."""
    x = (np.arange(n, dtype=np.uint64) * np.uint64(0x9E3779B9) + np.uint64(seed) * np.uint64(0x85EBCA6B))
    x = (x & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    x ^= x >> np.uint32(16)
    x = (x.astype(np.uint64) * np.uint64(0x85EBCA6B) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    x ^= x >> np.uint32(13)
    x = (x.astype(np.uint64) * np.uint64(0xC2B2AE35) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    x ^= x >> np.uint32(16)
    return (x >> np.uint32(8)).astype(np.float32) * np.float32(2.0**-23) - np.float32(1.0)


def formula_tensor(key, shape, seed):
    """The value rule: matrices/kernels r/√fan_in, norm weights 1 + r/4, biases and norm biases r/4."""
    n = int(np.prod(shape))
    r = formula(n, seed)
    if len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        scale = np.float32(1.0 / math.sqrt(fan_in))
        v = r * scale
    elif key.endswith("weight"):
        v = r * np.float32(0.25) + np.float32(1.0)
    else:
        v = r * np.float32(0.25)
    return torch.from_numpy(v.reshape(shape).copy())


def fill_formula(module):
    """Seeds are 1 + the index of the key in sorted order."""
    sd = module.state_dict()
    keys = sorted(sd.keys())
    new = {k: formula_tensor(k, tuple(sd[k].shape), i + 1) for i, k in enumerate(keys)}
    module.load_state_dict(new)
    return keys


def fill_random(module, gen):
    """Seeded random weights with every zero-initialised layer made non-zero, rounded to float16 values
    so that the weight files can be stored as F16 (half the size; exercises the widening path) while the
    reference still computes in float32 on exactly those values."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))
            elif name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            p.copy_(p.half().float())


def write(path, tensors, note, dtype=torch.float32):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for k, v in tensors.items():
        assert torch.equal(v.to(dtype).float(), v.float()), f"{k} is not exactly representable as {dtype}"
    save_file({k: v.contiguous().to(dtype) for k, v in tensors.items()}, path, metadata={"note": note})
    print(f"{os.path.relpath(path, ROOT)}: {os.path.getsize(path)} bytes")


def make_unet(unet_mod, util_mod, attn_mod, sampling_embedding):
    gen = torch.Generator().manual_seed(SEED)
    config = dict(
        in_channels=4, out_channels=4, model_channels=32, num_res_blocks=1, attention_resolutions=[1, 2],
        channel_mult=[1, 2], num_head_channels=16, num_classes="sequential", adm_in_channels=48,
        use_spatial_transformer=True, use_linear_in_transformer=True, transformer_depth=[1, 2],
        transformer_depth_middle=1, context_dim=64, spatial_transformer_attn_type="softmax", legacy=False,
        cfg_cond_embed_dim=16,
    )
    model = unet_mod.UNetModel(**config).eval()
    fill_random(model, gen)
    weights = {"model.diffusion_model." + k: v for k, v in model.state_dict().items()}
    note = "make_unet_vae_fixtures.py: sgm UNetModel " + json.dumps(config)
    write(os.path.join(ROOT, "unet", "small_weights.safetensors"), weights, note, torch.float16)

    x = torch.randn(2, 4, 8, 8, generator=gen)
    t = torch.tensor([999.0, 17.0])
    context = torch.randn(2, 7, 64, generator=gen)
    y = torch.randn(2, 48, generator=gen)
    w = torch.tensor([7.5, 7.5])
    scale_emb = sampling_embedding(w, 16)
    with torch.no_grad():
        eps = model(x, timesteps=t, context=context, y=y, scale_emb=scale_emb)
        eps_plain = model(x, timesteps=t, context=context, y=y)
        t_emb = util_mod.timestep_embedding(t, 32)
    io = dict(x=x, t=t, context=context, y=y, scale_emb=scale_emb, t_emb=t_emb, eps=eps, eps_no_guidance=eps_plain)
    write(os.path.join(ROOT, "unet", "small_io.safetensors"), io, note)
    return config

def make_st1280(attn_mod):
    st = attn_mod.SpatialTransformer(
        1280, 20, 64, depth=1, context_dim=4096, use_linear=True, attn_type="softmax", use_checkpoint=False).eval()
    keys = fill_formula(st)
    n_keys = len(keys)
    x = torch.from_numpy(formula(1280 * 64, 90001).reshape(1, 1280, 8, 8).copy())
    context = torch.from_numpy(formula(225 * 4096, 90002).reshape(1, 225, 4096).copy())
    with torch.no_grad():
        out = st(x, context=context)
        # A faint input (×2⁻¹⁰, exact) makes the norm epsilons matter: variance ~3e-7 against eps 1e-6.
        out_faint = st(x * 2.0**-10, context=context)
    note = ("make_unet_vae_fixtures.py: sgm SpatialTransformer(1280, 20 heads × 64, depth 1, context 4096, "
            "linear) with formula weights (seed = 1 + sorted key index), x = formula(1280·64, 90001), "
            f"context = formula(225·4096, 90002); {n_keys} keys")
    write(os.path.join(ROOT, "unet", "st1280_io.safetensors"), dict(out=out, out_faint=out_faint), note)


def make_vae(vae_mod, dist_mod):
    gen = torch.Generator().manual_seed(SEED + 1)
    dd = dict(double_z=True, z_channels=4, resolution=16, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 2],
              num_res_blocks=1, attn_resolutions=[], dropout=0.0, attn_type="vanilla")
    enc = vae_mod.Encoder(**dd).eval()
    dec = vae_mod.Decoder(**dd).eval()
    quant = torch.nn.Conv2d(8, 8, 1)
    post = torch.nn.Conv2d(4, 4, 1)
    container = torch.nn.Module()
    container.encoder, container.decoder, container.quant_conv, container.post_quant_conv = enc, dec, quant, post
    fill_random(container, gen)
    with torch.no_grad():
        # Push two log-variance channels past the clamp so that [−30, 20] is exercised.
        quant.bias[4] = 50.0
        quant.bias[5] = -50.0
    note = "make_unet_vae_fixtures.py: sgm Encoder/Decoder ddconfig " + json.dumps(dd) + ", embed_dim 4"
    write(os.path.join(ROOT, "vae", "small_weights.safetensors"), container.state_dict(), note, torch.float16)

    image = torch.rand(1, 3, 16, 16, generator=gen) * 2 - 1
    noise = torch.randn(1, 4, 8, 8, generator=gen)
    z = torch.randn(1, 4, 8, 8, generator=gen) * 0.13025 * 4
    with torch.no_grad():
        posterior = dist_mod.DiagonalGaussianDistribution(quant(enc(image)))
        sample = posterior.mean + posterior.std * noise
        decoded = dec(post(z))
        decoded_scaled = torch.clamp((dec(post(z / 0.13025)) + 1.0) / 2.0, min=0.0, max=1.0)
    io = dict(image=image, noise=noise, mean=posterior.mean, logvar=posterior.logvar, sample=sample, z=z,
              decoded=decoded, decoded_scaled=decoded_scaled)
    write(os.path.join(ROOT, "vae", "small_io.safetensors"), io, note)
    return dd


def make_mid512(vae_mod):
    mid = torch.nn.Module()
    mid.block_1 = vae_mod.ResnetBlock(in_channels=512, out_channels=512, temb_channels=0, dropout=0.0)
    mid.attn_1 = vae_mod.make_attn(512, attn_type="vanilla")
    mid.block_2 = vae_mod.ResnetBlock(in_channels=512, out_channels=512, temb_channels=0, dropout=0.0)
    mid.eval()
    fill_formula(mid)
    x = torch.from_numpy(formula(512 * 256, 90003).reshape(1, 512, 16, 16).copy())
    with torch.no_grad():
        h1 = mid.block_1(x, None)
        h2 = mid.attn_1(h1)
        h3 = mid.block_2(h2, None)
        faint = mid.block_2(mid.attn_1(mid.block_1(x * 2.0**-10, None)), None)
    note = ("make_unet_vae_fixtures.py: sgm ResnetBlock(512) → AttnBlock(512) → ResnetBlock(512) with formula "
            "weights (seed = 1 + sorted key index of block_1.*, attn_1.*, block_2.*), x = formula(512·256, 90003)")
    write(os.path.join(ROOT, "vae", "mid512_io.safetensors"), dict(block_1=h1, attn_1=h2, block_2=h3, faint=faint), note)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_unet_vae_fixtures.py <path of a THUDM/CogView3 checkout>")
    checkout = sys.argv[1]
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    unet_mod, util_mod, vae_mod, attn_mod, dist_mod = load_sgm(checkout)
    # sampling.py imports the whole sampler stack; the guidance embedding is read from it when it loads.
    try:
        sampling = importlib.import_module("sgm.modules.diffusionmodules.sampling")
        guidance_embedding = sampling.guidance_scale_embedding
        source = "sgm sampling.guidance_scale_embedding"
    except Exception as error:  # noqa: BLE001 - report and stop: the fixture must come from the official code
        sys.exit(f"cannot import sgm sampling.py for guidance_scale_embedding: {error}")
    unet_config = make_unet(unet_mod, util_mod, attn_mod, guidance_embedding)
    make_st1280(attn_mod)
    vae_config = make_vae(vae_mod, dist_mod)
    make_mid512(vae_mod)
    versions = dict(torch=torch.__version__, numpy=np.__version__, python=sys.version.split()[0])
    for area, extra in [("unet", dict(config=unet_config, guidance_embedding=source)), ("vae", dict(config=vae_config))]:
        note = dict(
            script="Tests/tools/make_unet_vae_fixtures.py",
            command="python3 Tests/tools/make_unet_vae_fixtures.py /tmp/cogview3-src",
            reference="THUDM/CogView3@d450a7412f843709d8acaea4c96f0464d154f609 sat/sgm (official classes)",
            seed=SEED, versions=versions,
            tolerance="relative L2 <= 1e-5 per block (st1280, mid512), <= 1e-4 whole small model",
            **extra)
        if area == "unet":
            note["other_files"] = {
                "cogview3-state-dict-shapes.txt": (
                    "copy of the shared reference cogview3-state-dict-shapes.txt (UNet, distilled extras and VAE "
                    "sections, lines 1-1940), generated from the official THUDM/CogView3@d450a74 sat/ classes on "
                    "torch's meta device; the tests compare the Swift presets' keys and shapes with it exactly")}
        with open(os.path.join(ROOT, area, "README.json"), "w") as f:
            json.dump(note, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
