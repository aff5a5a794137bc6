#!/usr/bin/env python3
"""End-to-end parity fixtures (Tests/Fixtures/parity/): the official CogView3 pipeline on the tiny model set.

Runs the official sgm classes of THUDM/CogView3 (imported at run time from a checkout; none of their code is
copied) on Tests/Fixtures/tiny-cogview3 end to end, the way sat/sample_unet.py + sat/diffusion.py do:

  GeneralConditioner [FrozenT5Embedder (max_length 225), 3 × ConcatTimestepEmbedderND(256)] with
  force_uc_zero_embeddings ["txt"] → c, uc
  base:  torch.manual_seed(seed); ε = randn(1, 4, H/8, W/8) (SATDiffusionEngine.sample)
         EulerEDMSampler(50 steps, LegacyDDPMDiscretization, VanillaCFG 7.5) with DiscreteDenoiser(EpsScaling)
         over OpenAIWrapper(UNetModel)
  decode: AutoencoderKLInferenceWrapper.decode(z / 0.13025); clamp((x + 1) / 2, 0, 1); 8-bit by
         (255 · x).astype(uint8), i.e. truncation (sample_unet.py perform_save_locally)
  relay: torch.manual_seed(seed); image = ToTensor(8-bit) · 2 − 1; bilinear ×2 (align_corners False);
         z^L = encode (posterior sample: the first randn) · 0.13025; ε = randn(1, 4, h, w) (the second);
         LinearRelayEDMSampler(N 24, P 12, VanillaCFG 7.5) (sample_relay); decode as above.
  distilled 4+1: the same with the distilled UNets, IdentityGuider, cfg_cond_scale 7.5 (the w_proj guidance
         embedding, widths 512 / 256), base EulerEDMSampler 4 steps, relay LinearRelayEDMSampler(5, 1).

The relay run is a separate process in the official code that reads the base PNG; here both stages run in one
process, with the RNG re-seeded at the start of each stage exactly as each official run seeds it.

Deviations from the official runs, all for CPU parity with the Swift float32 code: everything computes in
float32 (the official run casts the engine to fp16; the tiny weights are fp16 values, so nothing is lost in
storage), attention types "softmax"/"vanilla" instead of the xformers ones (same math), sizes base 128² →
relay 256² (official 512² → 1024²; the vector conditioning follows the size). SATDiffusionEngine itself needs
SwissArmyTransformer, so its four small methods used here (sample, sample_relay, encode_first_stage,
decode_first_stage) are reproduced in `Engine` below, line for line in behaviour. Modules the chosen classes
never touch but whose files import them (kornia, open_clip, pytorch_lightning) are stubbed.

Also writes the float hand-over variant (`quantize: none`: the decoded float image goes to the relay without
8-bit rounding) and measures how close the official base image sits to 8-bit level boundaries.

    python3 Tests/tools/make_parity_fixtures.py /work/cogview3
"""
import importlib
import json
import math
import os
import sys
import types

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TINY = os.path.join(ROOT, "Tests", "Fixtures", "tiny-cogview3")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "parity")
sys.path.insert(0, HERE)
import make_tiny_cogview3 as tiny  # noqa: E402  (the tiny configs)

PROMPT = "a red fox in a snowy forest at sunset, highly detailed"
SEED = 42
BASE_SIZE = 128
RELAY_SIZE = 256
CFG = 7.5
SCALE = tiny.SCALE_FACTOR
DISC = {"target": "sgm.modules.diffusionmodules.discretizer.LegacyDDPMDiscretization"}
CFG_GUIDER = {"target": "sgm.modules.diffusionmodules.guiders.VanillaCFG", "params": {"scale": CFG}}
ID_GUIDER = {"target": "sgm.modules.diffusionmodules.guiders.IdentityGuider"}


def load_official(checkout):
    sat = os.path.join(checkout, "sat")
    if not os.path.isdir(os.path.join(sat, "sgm")):
        sys.exit(f"{checkout}: no sat/sgm folder (pass the path of a THUDM/CogView3 checkout)")
    sys.path.insert(0, sat)
    # Packages registered empty (their __init__ files pull in training code); stubs for imports of module
    # files whose used classes never touch them.
    for name in ["sgm", "sgm.modules", "sgm.modules.diffusionmodules", "sgm.modules.distributions",
                 "sgm.modules.encoders", "sgm.models", "sgm.modules.autoencoding"]:
        pkg = types.ModuleType(name)
        pkg.__path__ = [os.path.join(sat, *name.split("."))]
        sys.modules[name] = pkg
    for name in ["kornia", "open_clip"]:
        sys.modules.setdefault(name, types.ModuleType(name))
    if "pytorch_lightning" not in sys.modules:
        pl = types.ModuleType("pytorch_lightning")
        pl.LightningModule = torch.nn.Module
        sys.modules["pytorch_lightning"] = pl
    mods = {}
    for short, name in [("unet", "sgm.modules.diffusionmodules.openaimodel"),
                        ("wrappers", "sgm.modules.diffusionmodules.wrappers"),
                        ("denoiser", "sgm.modules.diffusionmodules.denoiser"),
                        ("sampling", "sgm.modules.diffusionmodules.sampling"),
                        ("encoders", "sgm.modules.encoders.modules"),
                        ("autoencoder", "sgm.models.autoencoder"),
                        ("util", "sgm.util")]:
        mods[short] = importlib.import_module(name)
    return mods


class Engine:
    """The parts of sat/diffusion.py SATDiffusionEngine used for sampling, on the CPU in float32."""

    def __init__(self, mods, unet_folder, vae):
        sd = torch.load(os.path.join(unet_folder, "1", "mp_rank_00_model_states.pt"), map_location="cpu")["module"]
        prefix = "model.diffusion_model."
        weights = {k[len(prefix):]: v.float() for k, v in sd.items() if k.startswith(prefix)}
        config = dict(tiny.UNET)
        if "w_proj.weight" in weights:
            config["cfg_cond_embed_dim"] = weights["w_proj.weight"].shape[1]
        net = mods["unet"].UNetModel(**config).eval()
        net.load_state_dict(weights, strict=True)
        self.model = mods["wrappers"].OpenAIWrapper(net)
        self.denoiser = mods["denoiser"].DiscreteDenoiser(
            weighting_config={"target": "sgm.modules.diffusionmodules.denoiser_weighting.EpsWeighting"},
            scaling_config={"target": "sgm.modules.diffusionmodules.denoiser_scaling.EpsScaling"},
            num_idx=1000, discretization_config=DISC)
        self.first_stage_model = vae
        self.scale_factor = SCALE

    def den(self, input, sigma, c, **kw):
        return self.denoiser(self.model, input, sigma, c, **kw)

    @torch.no_grad()
    def sample(self, sampler, c, uc, shape):
        randn = torch.randn(1, *shape).to(torch.float32)
        noise = randn.clone()  # EDMSampler scales its argument in place
        return sampler(self.den, randn, c, uc=uc), noise

    @torch.no_grad()
    def sample_relay(self, sampler, image, c, uc, shape):
        randn = torch.randn(1, *shape).to(torch.float32)
        return sampler(self.den, image, randn.clone(), c, uc=uc), randn

    @torch.no_grad()
    def encode_first_stage(self, x):
        return self.scale_factor * self.first_stage_model.encode(x)

    @torch.no_grad()
    def decode_first_stage(self, z):
        return self.first_stage_model.decode(1.0 / self.scale_factor * z)


def to_image(samples_x):
    """sample_unet.py: clamp((x + 1) / 2, 0, 1), then perform_save_locally's (255 · x).astype(uint8)."""
    samples = torch.clamp((samples_x.float() + 1.0) / 2.0, min=0.0, max=1.0)
    arr = 255.0 * samples[0].permute(1, 2, 0).numpy()  # rearrange "c h w -> h w c"
    return samples, arr.astype(np.uint8)


def relay_input(u8):
    """Image.open(png).convert("RGB") → ToTensor() · 2 − 1 → bilinear ×2 (sample_unet.py l.179-190)."""
    t = torch.from_numpy(u8.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    return F.interpolate(t * 2 - 1, scale_factor=2, mode="bilinear", align_corners=False)


def sampler(mods, name, **params):
    cls = getattr(mods["sampling"], name)
    return cls(discretization_config=DISC, device="cpu", verbose=False, **params)


def conditions(mods, size):
    """GeneralConditioner of cogview3_base.yaml (T5 + the three size/crop embedders) on the tiny T5."""
    t5 = os.path.join(TINY, "t5-v1_1-xxl")
    emb = [{"is_trainable": False, "input_key": "txt",
            "target": "sgm.modules.encoders.modules.FrozenT5Embedder",
            "params": {"model_dir": t5, "max_length": 225, "device": "cpu"}}]
    for key in ["original_size_as_tuple", "crop_coords_top_left", "target_size_as_tuple"]:
        emb.append({"is_trainable": False, "input_key": key,
                    "target": "sgm.modules.encoders.modules.ConcatTimestepEmbedderND", "params": {"outdim": 256}})
    cond = mods["encoders"].GeneralConditioner(emb).float()
    # get_batch of sample_unet.py for N = [1]
    batch = {"txt": [PROMPT], "original_size_as_tuple": torch.tensor([size, size]).repeat(1, 1),
             "crop_coords_top_left": torch.tensor([0, 0]).repeat(1, 1),
             "target_size_as_tuple": torch.tensor([size, size]).repeat(1, 1)}
    batch_uc = {"txt": [""]}
    for key in batch:
        if key not in batch_uc and isinstance(batch[key], torch.Tensor):
            batch_uc[key] = torch.clone(batch[key])
    with torch.no_grad():
        c, uc = cond.get_unconditional_conditioning(batch, batch_uc=batch_uc, force_uc_zero_embeddings=["txt"])
    ids = cond.embedders[0].tokenizer([PROMPT], truncation=True, max_length=225, padding="max_length",
                                      return_tensors="pt").input_ids
    return c, uc, ids


def load_vae(mods):
    vae = mods["autoencoder"].AutoencoderKLInferenceWrapper(
        embed_dim=tiny.EMBED_DIM, ddconfig=tiny.VAE, lossconfig={"target": "torch.nn.Identity"},
        ckpt_path=os.path.join(TINY, "cogview3-base-3b-vae", "sdxl_vae.safetensors"))
    return vae.float().eval()


def boundary_report(samples):
    """How close the float base image sits to the 8-bit truncation boundaries (255·x near an integer)."""
    v = (255.0 * samples[0].permute(1, 2, 0).numpy()).astype(np.float32).ravel()
    inside = v[(v > 0) & (v < 255)]
    frac = inside - np.floor(inside)
    dist = np.minimum(frac, 1 - frac)
    return {"pixels": int(v.size), "strictly_inside_0_255": int(inside.size),
            "within_1e-3_of_a_level": int((dist < 1e-3).sum()), "within_1e-4": int((dist < 1e-4).sum()),
            "within_1e-5": int((dist < 1e-5).sum()), "min_distance": float(dist.min()) if dist.size else None}


def run(mods, vae, c_base, uc_base, c_relay, uc_relay, distilled):
    out = {}
    names = ("cogview3-base-distill-4step", "cogview3-relay-distill-1step") if distilled else (
        "cogview3-base", "cogview3-relay")
    base = Engine(mods, os.path.join(TINY, names[0]), vae)
    relay = Engine(mods, os.path.join(TINY, names[1]), vae)
    if distilled:
        base_sampler = sampler(mods, "EulerEDMSampler", num_steps=4, guider_config=ID_GUIDER,
                               cfg_cond_scale=CFG, cfg_cond_embed_dim=512)
        relay_sampler = sampler(mods, "LinearRelayEDMSampler", num_steps=5, partial_num_steps=1,
                                guider_config=ID_GUIDER, cfg_cond_scale=CFG, cfg_cond_embed_dim=256)
    else:
        base_sampler = sampler(mods, "EulerEDMSampler", num_steps=50, guider_config=CFG_GUIDER)
        relay_sampler = sampler(mods, "LinearRelayEDMSampler", num_steps=24, partial_num_steps=12,
                                guider_config=CFG_GUIDER)
    lat = BASE_SIZE // 8
    torch.manual_seed(SEED)
    z, noise = base.sample(base_sampler, dict(c_base), dict(uc_base), (4, lat, lat))
    out["base.noise"], out["base.latent"] = noise, z
    samples, u8 = to_image(base.decode_first_stage(z))
    out["base.image_u8"] = torch.from_numpy(u8.copy())
    report = boundary_report(samples)
    for tag, image in [("", relay_input(u8)),
                       ("none.", F.interpolate(samples * 2 - 1, scale_factor=2, mode="bilinear",
                                               align_corners=False))]:
        torch.manual_seed(SEED)
        z_lr = relay.encode_first_stage(image)
        rz, rnoise = relay.sample_relay(relay_sampler, z_lr, dict(c_relay), dict(uc_relay), (4, 2 * lat, 2 * lat))
        out[f"relay.{tag}lr_latent"], out[f"relay.{tag}latent"] = z_lr, rz
        if not tag:
            out["relay.noise"] = rnoise
            _, ru8 = to_image(relay.decode_first_stage(rz))
            out["relay.image_u8"] = torch.from_numpy(ru8.copy())
    return out, report


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_parity_fixtures.py <path of a THUDM/CogView3 checkout>")
    torch.set_num_threads(2)
    mods = load_official(sys.argv[1])
    vae = load_vae(mods)
    c_base, uc_base, ids = conditions(mods, BASE_SIZE)
    c_relay, uc_relay, _ = conditions(mods, RELAY_SIZE)
    assert torch.equal(c_base["crossattn"], c_relay["crossattn"])
    assert not uc_base["crossattn"].any(), "uc context must be zero"
    tensors = {"input_ids": ids.to(torch.int64), "context": c_base["crossattn"],
               "y.base": c_base["vector"], "y.relay": c_relay["vector"]}
    reports = {}
    for name, distilled in [("relay-1024", False), ("distilled-4+1", True)]:
        out, reports[name] = run(mods, vae, c_base, uc_base, c_relay, uc_relay, distilled)
        for k, v in out.items():
            tensors[f"{name}.{k}"] = v
    os.makedirs(OUT, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in sorted(tensors.items())}
    meta = {"prompt": PROMPT, "seed": str(SEED), "base_size": str(BASE_SIZE), "relay_size": str(RELAY_SIZE)}
    save_file(tensors, os.path.join(OUT, "parity.safetensors"), metadata=meta)
    summary = {
        "script": "Tests/tools/make_parity_fixtures.py",
        "command": "python3 Tests/tools/make_parity_fixtures.py /work/cogview3",
        "reference": tiny.REFERENCE, "models": "Tests/Fixtures/tiny-cogview3",
        "prompt": PROMPT, "seed": SEED, "base_size": BASE_SIZE, "relay_size": RELAY_SIZE, "cfg": CFG,
        "tolerance": "relative L2 <= 1e-4 per stage (latents, context); 8-bit images: see README",
        "versions": dict(torch=torch.__version__.split("+")[0], transformers=transformers.__version__,
                         numpy=np.__version__, python=sys.version.split()[0]),
        "truncation_boundaries": reports,
        "tensors": {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in tensors.items()},
        "stats": {k: float(v.float().std()) for k, v in tensors.items() if v.is_floating_point()},
    }
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    print(json.dumps(reports, indent=1))
    print(f"parity.safetensors: {os.path.getsize(os.path.join(OUT, 'parity.safetensors'))} bytes")


if __name__ == "__main__":
    main()
