"""Parity of the mini's networks with the official CogView3 `sgm` classes (keys, shapes and outputs).

    python3 -m unittest discover -s Examples/cogview3-mini/train -p 'test_*.py'

The official classes are imported at run time from a THUDM/CogView3 checkout (COGVIEW3_SAT, default
/work/cogview3/sat; none of its code is in this repository); the tests skip, saying so, without it.
The package `__init__`s of sgm pull in training-only dependencies (pytorch_lightning, kornia,
torchvision), so the three packages are registered as bare namespaces and only the two model files load.
For the VAE, sgm's `Normalize` (fixed 32 groups) is replaced by the mini's 4-group GroupNorm: the group
count is the one deliberate deviation, carried to CogFlow by cogflow.json {"groups": 4}.
Also: the flat-colour check of the VAE must separate red, green and blue at init.
"""

from __future__ import annotations

import os
import sys
import types
import unittest
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import AutoencoderKL, UNet, guidance_embedding, size_vector  # noqa: E402

SAT = Path(os.environ.get("COGVIEW3_SAT", "/work/cogview3/sat"))


def official():
    if not (SAT / "sgm" / "modules" / "diffusionmodules" / "openaimodel.py").exists():
        raise unittest.SkipTest(f"no THUDM/CogView3 checkout at {SAT} (set COGVIEW3_SAT)")
    for name, sub in (("sgm", "sgm"), ("sgm.modules", "sgm/modules"), ("sgm.modules.diffusionmodules", "sgm/modules/diffusionmodules")):
        if name not in sys.modules:
            m = types.ModuleType(name)
            m.__path__ = [str(SAT / sub)]
            sys.modules[name] = m
    try:
        import sgm.modules.diffusionmodules.model as vae_mod
        from sgm.modules.diffusionmodules.openaimodel import UNetModel
    except ImportError as e:
        raise unittest.SkipTest(f"the official sgm classes do not import here: {e}")
    return UNetModel, vae_mod


def shapes(sd):
    return {k: tuple(v.shape) for k, v in sd.items()}


class LayoutTests(unittest.TestCase):
    def test_unet_matches_sgm(self):
        UNetModel, _ = official()
        for w_dim in (None, 256):
            torch.manual_seed(0)
            mine = UNet(guidance_embed_dim=w_dim).eval()
            with torch.no_grad():
                for p in mine.parameters():  # the zero-initialised outputs would hide mistakes
                    p.add_(torch.randn_like(p) * 0.02)
            c = mine.cfg
            ref = UNetModel(
                in_channels=4, out_channels=4, model_channels=c["model_channels"], num_res_blocks=c["num_res_blocks"],
                attention_resolutions=c["attention_resolutions"], channel_mult=c["channel_mult"],
                num_head_channels=c["num_head_channels"], use_spatial_transformer=True, use_linear_in_transformer=True,
                transformer_depth=c["transformer_depth"], context_dim=c["context_dim"], num_classes="sequential",
                adm_in_channels=1536, legacy=False, spatial_transformer_attn_type="softmax", cfg_cond_embed_dim=w_dim,
            ).eval()
            self.assertEqual(shapes(mine.state_dict()), shapes(ref.state_dict()))
            ref.load_state_dict(mine.state_dict())
            x, ctx = torch.randn(2, 4, 8, 8), torch.randn(2, 225, c["context_dim"])
            t, y = torch.tensor([999, 17]), size_vector(64, 64, 2)
            w = torch.tensor([7.5, 7.5]) if w_dim else None
            with torch.no_grad():
                a = mine(x, t, ctx, y, w)
                b = ref(x, timesteps=t, context=ctx, y=y, scale_emb=guidance_embedding(w, w_dim) if w_dim else None)
            self.assertLess(((a - b).norm() / b.norm()).item(), 1e-5)

    def test_vae_matches_sgm(self):
        _, vae_mod = official()
        mine = AutoencoderKL().eval()
        c = mine.cfg
        saved = vae_mod.Normalize
        vae_mod.Normalize = lambda ch, num_groups=32: torch.nn.GroupNorm(c["groups"], ch, eps=1e-6, affine=True)
        try:
            dd = dict(ch=c["ch"], out_ch=3, ch_mult=c["ch_mult"], num_res_blocks=c["num_res_blocks"], attn_resolutions=[],
                      in_channels=3, resolution=64, z_channels=c["z_channels"], double_z=True, attn_type="vanilla")
            enc, dec = vae_mod.Encoder(**dd).eval(), vae_mod.Decoder(**dd).eval()
        finally:
            vae_mod.Normalize = saved
        ref = {**{"encoder." + k: v for k, v in enc.state_dict().items()}, **{"decoder." + k: v for k, v in dec.state_dict().items()}}
        ours = {k: v for k, v in mine.state_dict().items() if not k.startswith(("quant_conv", "post_quant_conv"))}
        self.assertEqual(shapes(ours), shapes(ref))
        enc.load_state_dict({k[8:]: v for k, v in ours.items() if k.startswith("encoder.")})
        dec.load_state_dict({k[8:]: v for k, v in ours.items() if k.startswith("decoder.")})
        x, z = torch.rand(1, 3, 32, 32) * 2 - 1, torch.randn(1, 4, 4, 4)
        with torch.no_grad():
            self.assertLess(((mine.encoder(x) - enc(x)).norm() / enc(x).norm()).item(), 1e-5)
            self.assertLess(((mine.decoder(z) - dec(z)).norm() / dec(z).norm()).item(), 1e-5)

    def test_flat_colours_separate_at_init(self):
        from vae import colour_check

        torch.manual_seed(1102)
        self.assertGreater(colour_check(AutoencoderKL().eval(), "cpu")["separation"], 1e-2)


if __name__ == "__main__":
    unittest.main()
