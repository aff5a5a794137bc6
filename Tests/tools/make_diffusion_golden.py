#!/usr/bin/env python3
"""Golden values for the Diffusion target, made by running the *official* CogView3 sgm classes.

    python3 Tests/tools/make_diffusion_golden.py --cogview3 PATH/TO/CogView3 \
        [--out Tests/Fixtures/diffusion/golden.json]

PATH/TO/CogView3 is a checkout of https://github.com/THUDM/CogView3 (used at commit
d450a7412f843709d8acaea4c96f0464d154f609). Its files are imported from there at run time and none of
its code is copied here: the script loads sat/sgm/modules/diffusionmodules/{discretizer,denoiser,
denoiser_scaling,guiders,sampling,sampling_utils,util}.py as they are. The sgm package's __init__ files
and sgm/util.py pull in the whole training stack (omegaconf, fsspec, PIL, the autoencoder); instead of
those this script registers a bare package and a tiny `sgm.util` with the four helpers the loaded files
use (append_dims, default, append_zero, instantiate_from_config), written from their documented behaviour.

The samplers run with a fixed fake ε-network (fake_network below, replicated in
Tests/DiffusionTests/GoldenTrajectoryTests.swift) on small latents in float32 on the CPU, seeded with
torch.manual_seed. For each run the JSON records the inputs (noise, z^L, contexts), the sampler's state
x passed to the denoiser before every step, and the output.
"""
import argparse
import importlib
import json
import math
import os
import sys
import types

import numpy as np
import torch


def install_sgm(cogview3_root):
    dm_dir = os.path.join(cogview3_root, "sat", "sgm", "modules", "diffusionmodules")
    if not os.path.isfile(os.path.join(dm_dir, "sampling.py")):
        sys.exit(f"{dm_dir}/sampling.py not found: --cogview3 must point at a CogView3 checkout")

    omegaconf = types.ModuleType("omegaconf")
    omegaconf.ListConfig = type("ListConfig", (), {})
    omegaconf.OmegaConf = type("OmegaConf", (), {})
    sys.modules["omegaconf"] = omegaconf

    def package(name, path=None):
        m = types.ModuleType(name)
        m.__path__ = [path] if path else []
        sys.modules[name] = m
        return m

    package("sgm")
    package("sgm.modules")
    package("sgm.modules.diffusionmodules", dm_dir)

    util = types.ModuleType("sgm.util")

    def append_dims(x, target_dims):
        return x[(...,) + (None,) * (target_dims - x.ndim)]

    def default(val, d):
        if val is not None:
            return val
        return d() if callable(d) else d

    def append_zero(x):
        return torch.cat([x, x.new_zeros([1])])

    def instantiate_from_config(config, **extra):
        module, cls = config["target"].rsplit(".", 1)
        return getattr(importlib.import_module(module), cls)(**config.get("params", {}), **extra)

    util.append_dims, util.default, util.append_zero = append_dims, default, append_zero
    util.instantiate_from_config = instantiate_from_config
    sys.modules["sgm.util"] = util
    return instantiate_from_config


DM = "sgm.modules.diffusionmodules"
DISCRETIZATION = {"target": f"{DM}.discretizer.LegacyDDPMDiscretization"}


def fake_network(x_in, c_noise, cond, scale_emb=None):
    """eps = tanh(0.7·x_in + 0.3·mean(ctx)) · (0.5 + 0.25·cos(0.01·t)) + 0.1·mean(y) [+ 0.05·mean(g)·x_in]."""
    b = x_in.shape[0]
    cm = cond["crossattn"].reshape(b, -1).mean(dim=1).reshape(b, 1, 1, 1)
    vm = cond["vector"].reshape(b, -1).mean(dim=1).reshape(b, 1, 1, 1)
    t = c_noise.to(torch.float32).reshape(b, 1, 1, 1)
    eps = torch.tanh(0.7 * x_in + 0.3 * cm) * (0.5 + 0.25 * torch.cos(0.01 * t)) + 0.1 * vm
    if scale_emb is not None:
        gm = scale_emb.reshape(b, -1).mean(dim=1).reshape(b, 1, 1, 1)
        eps = eps + 0.05 * gm * x_in
    return eps


def flat(t):
    return [float(v) for v in t.detach().to(torch.float32).reshape(-1).tolist()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cogview3", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Fixtures", "diffusion", "golden.json"))
    args = ap.parse_args()
    inst = install_sgm(args.cogview3)
    sampling = importlib.import_module(f"{DM}.sampling")
    dm_util = importlib.import_module(f"{DM}.util")

    denoiser = inst({
        "target": f"{DM}.denoiser.DiscreteDenoiser",
        "params": {
            "num_idx": 1000,
            "weighting_config": {"target": f"{DM}.denoiser_weighting.EpsWeighting"},
            "scaling_config": {"target": f"{DM}.denoiser_scaling.EpsScaling"},
            "discretization_config": DISCRETIZATION,
        },
    })
    disc = inst(DISCRETIZATION)
    out = {
        "provenance": {
            "script": "Tests/tools/make_diffusion_golden.py",
            "command": "python3 Tests/tools/make_diffusion_golden.py --cogview3 <CogView3 checkout>",
            "cogview3_commit": "d450a7412f843709d8acaea4c96f0464d154f609",
            "torch": torch.__version__,
            "numpy": np.__version__,
            "dtype": "float32 on CPU",
            "seeds": "torch.manual_seed(1000 + case index) before drawing each case's inputs",
        },
        "sigma_table": flat(denoiser.sigmas),
        "grids": {},
        "size_vector": {},
        "guidance_embedding": {},
        "cases": [],
    }
    for n in (50, 24, 8, 5, 4):
        steps = sampling.generate_roughly_equally_spaced_steps(n, 1000)
        out["grids"][str(n)] = {"timesteps": [int(v) for v in steps[::-1]], "sigmas": flat(disc(n))}

    # y: ConcatTimestepEmbedderND applies timestep_embedding(x, 256) to each scalar and concatenates.
    for size in (512, 1024):
        scalars = torch.tensor([size, size, 0, 0, size, size], dtype=torch.float32)
        out["size_vector"][str(size)] = flat(dm_util.timestep_embedding(scalars, 256).reshape(1, -1))
    for dim in (512, 256):
        g = sampling.guidance_scale_embedding(torch.tensor([7.5]), embedding_dim=dim)
        out["guidance_embedding"][str(dim)] = flat(g)

    cfg = {"target": f"{DM}.guiders.VanillaCFG", "params": {"scale": 7.5}}
    ident = {"target": f"{DM}.guiders.IdentityGuider"}
    cases = [
        ("base50_cfg", "EulerEDMSampler", dict(num_steps=50, guider_config=cfg), 512, None),
        ("relay24x12_cfg", "LinearRelayEDMSampler", dict(num_steps=24, partial_num_steps=12, guider_config=cfg), 1024, None),
        ("distilled_base4", "EulerEDMSampler", dict(num_steps=4, guider_config=ident), 512, 512),
        ("distilled_base8", "EulerEDMSampler", dict(num_steps=8, guider_config=ident), 512, 512),
        ("distilled_relay1", "LinearRelayEDMSampler", dict(num_steps=5, partial_num_steps=1, guider_config=ident), 1024, 256),
        ("distilled_relay2", "LinearRelayEDMSampler", dict(num_steps=5, partial_num_steps=2, guider_config=ident), 1024, 256),
    ]
    shape = (1, 2, 4, 5)
    for ci, (name, cls, kw, size, wdim) in enumerate(cases):
        torch.manual_seed(1000 + ci)
        noise = torch.randn(*shape)
        low = torch.randn(*shape) * 0.8
        context = torch.randn(1, 3, 4)
        y = dm_util.timestep_embedding(torch.tensor([size, size, 0, 0, size, size], dtype=torch.float32), 256).reshape(1, -1)
        c = {"crossattn": context, "vector": y}
        uc = {"crossattn": torch.zeros_like(context), "vector": y.clone()}
        params = dict(kw, discretization_config=DISCRETIZATION, device="cpu")
        if wdim is not None:
            params.update(cfg_cond_scale=7.5, cfg_cond_embed_dim=wdim)
        sampler = getattr(sampling, cls)(**params)
        states = []

        def den(x, sigma, cond, **extra):
            states.append(flat(x[: shape[0]]))
            return denoiser(fake_network, x, sigma, cond, **extra)

        with torch.no_grad():
            if cls == "EulerEDMSampler":
                result = sampler(den, noise.clone(), c, uc=uc)
            else:
                result = sampler(den, low.clone(), noise.clone(), c, uc=uc)
        out["cases"].append({
            "name": name, "sampler": cls, "params": {k: v for k, v in kw.items() if k != "guider_config"},
            "guider": "VanillaCFG(7.5)" if kw["guider_config"] is cfg else "IdentityGuider",
            "cfg_cond_scale": 7.5 if wdim else None, "cfg_cond_embed_dim": wdim, "image_size": size,
            "shape": list(shape), "noise": flat(noise), "low": flat(low), "context": flat(context),
            "context_shape": list(context.shape), "states": states, "output": flat(result),
        })
    with open(args.out, "w") as f:
        json.dump(out, f)
    print(f"wrote {args.out}: {len(out['cases'])} cases")


if __name__ == "__main__":
    main()
