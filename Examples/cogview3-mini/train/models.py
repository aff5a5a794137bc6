"""The CogView3-mini networks in PyTorch, written for this project, with module names that give exactly
the official state-dict keys (cogview3-official.md §9), so export is a prefix and a dtype change:

- `UNet`: the sgm `UNetModel` layout CogView3 uses (§3.1): time_embed, label_emb (1536-wide size/crop
  vector), input_blocks / middle_block / output_blocks with ResBlocks and linear-projection
  SpatialTransformers (GEGLU feed-forward), out; optional w_proj (no bias) for the distilled models (§7).
- `AutoencoderKL`: the LDM KL autoencoder layout of the SDXL VAE (§4.1): encoder/decoder with
  ResnetBlocks, (0,1,0,1)-padded stride-2 downsampling, nearest upsampling, single-head mid attention,
  quant_conv / post_quant_conv. GroupNorm groups are a parameter (see vae.py for why the mini uses few).
- Schedules and embeddings of §2.2, §5.1 and §7.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# Schedule and embeddings (§5.1, §2.2, §7)


def sigma_table() -> torch.Tensor:
    """LegacyDDPM σ_t for t = 0…999 (β linear in √β, 0.00085 → 0.012), ascending, float32."""
    betas = np.linspace(math.sqrt(0.00085), math.sqrt(0.012), 1000, dtype=np.float64) ** 2
    abar = np.cumprod(1.0 - betas)
    return torch.from_numpy(np.sqrt(((1 - abar) / abar).astype(np.float32)))


def step_grid(n: int) -> list[int]:
    """DDPM timesteps of the N-step grid, descending (`generate_roughly_equally_spaced_steps`)."""
    return [int(t) for t in np.linspace(999, 0, n, endpoint=False).astype(int)]


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """sgm `timestep_embedding`: cos first, freqs exp(-ln(1e4)·i/half). t: [B] -> [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def guidance_embedding(w: torch.Tensor, dim: int) -> torch.Tensor:
    """sgm `guidance_scale_embedding`: input w·1000, sin first, denominator half-1. w: [B] -> [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=w.device) / (half - 1))
    args = (w.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


def size_vector(h: int, w: int, batch: int, device="cpu") -> torch.Tensor:
    """y (1536): [emb(H), emb(W), emb(0), emb(0), emb(H), emb(W)], 256 each (§2.2)."""
    vals = torch.tensor([h, w, 0, 0, h, w], dtype=torch.float32, device=device)
    y = timestep_embedding(vals, 256).reshape(1, 1536)
    return y.expand(batch, 1536).contiguous()


# ---------------------------------------------------------------------------------------------
# UNet (sgm openaimodel.UNetModel names)


def zero(m: nn.Module) -> nn.Module:
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int, groups: int):
        super().__init__()
        self.in_layers = nn.Sequential(nn.GroupNorm(groups, cin, eps=1e-5), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb, cout))
        self.out_layers = nn.Sequential(
            nn.GroupNorm(groups, cout, eps=1e-5), nn.SiLU(), nn.Dropout(0.0), zero(nn.Conv2d(cout, cout, 3, padding=1))
        )
        self.skip_connection = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.in_layers(x) + self.emb_layers(emb)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Attention(nn.Module):
    def __init__(self, dim: int, ctx: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(ctx, dim, bias=False)
        self.to_v = nn.Linear(ctx, dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(0.0))

    def forward(self, x, context=None):
        c = x if context is None else context
        b, n, d = x.shape
        q, k, v = (t.reshape(b, -1, self.heads, d // self.heads).transpose(1, 2) for t in (self.to_q(x), self.to_k(c), self.to_v(c)))
        o = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(o.transpose(1, 2).reshape(b, n, d))


class GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        v, gate = self.proj(x).chunk(2, dim=-1)  # value first, gate second (§11.6)
        return v * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim))

    def forward(self, x):
        return self.net(x)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, ctx: int, heads: int):
        super().__init__()
        self.attn1 = Attention(dim, dim, heads)
        self.ff = FeedForward(dim)
        self.attn2 = Attention(dim, ctx, heads)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x, context):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    def __init__(self, ch: int, ctx: int, heads: int, depth: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch, eps=1e-6)
        self.proj_in = nn.Linear(ch, ch)
        self.transformer_blocks = nn.ModuleList([TransformerBlock(ch, ctx, heads) for _ in range(depth)])
        self.proj_out = zero(nn.Linear(ch, ch))

    def forward(self, x, context):
        b, c, h, w = x.shape
        t = self.norm(x).flatten(2).transpose(1, 2)
        t = self.proj_in(t)
        for blk in self.transformer_blocks:
            t = blk(t, context)
        return x + self.proj_out(t).transpose(1, 2).reshape(b, c, h, w)


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.op = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Seq(nn.ModuleList):
    """One `input_blocks.N` / `output_blocks.N` entry (TimestepEmbedSequential)."""

    def forward(self, x, emb, context):
        for m in self:
            if isinstance(m, ResBlock):
                x = m(x, emb)
            elif isinstance(m, SpatialTransformer):
                x = m(x, context)
            else:
                x = m(x)
        return x


UNET_DEFAULTS = dict(
    model_channels=64, channel_mult=[1, 1, 1], num_res_blocks=1, attention_resolutions=[2, 4],
    transformer_depth=[1, 1, 1], num_head_channels=32, context_dim=128, adm_in_channels=1536, groups=32,
    guidance_embed_dim=None,
)


class UNet(nn.Module):
    """sgm UNetModel (eps-prediction). forward(x [B,4,h,w], t [B] ints, context [B,T,ctx], y [B,1536], w [B]?)."""

    def __init__(self, **cfg):
        super().__init__()
        c = {**UNET_DEFAULTS, **cfg}
        self.cfg = c
        mc, g = c["model_channels"], c["groups"]
        ted = 4 * mc
        self.time_embed = nn.Sequential(nn.Linear(mc, ted), nn.SiLU(), nn.Linear(ted, ted))
        self.label_emb = nn.Sequential(nn.Sequential(nn.Linear(c["adm_in_channels"], ted), nn.SiLU(), nn.Linear(ted, ted)))
        if c["guidance_embed_dim"]:
            self.w_proj = zero(nn.Linear(c["guidance_embed_dim"], mc, bias=False))

        def st(ch, depth):
            return SpatialTransformer(ch, c["context_dim"], ch // c["num_head_channels"], depth, g)

        self.input_blocks = nn.ModuleList([Seq([nn.Conv2d(4, mc, 3, padding=1)])])
        skips, ch, ds = [mc], mc, 1
        for level, mult in enumerate(c["channel_mult"]):
            for _ in range(c["num_res_blocks"]):
                layers = [ResBlock(ch, mult * mc, ted, g)]
                ch = mult * mc
                if ds in c["attention_resolutions"]:
                    layers.append(st(ch, c["transformer_depth"][level]))
                self.input_blocks.append(Seq(layers))
                skips.append(ch)
            if level != len(c["channel_mult"]) - 1:
                self.input_blocks.append(Seq([Downsample(ch)]))
                skips.append(ch)
                ds *= 2
        mid = [ResBlock(ch, ch, ted, g)]
        if c["attention_resolutions"]:
            mid.append(st(ch, c["transformer_depth"][-1]))
        mid.append(ResBlock(ch, ch, ted, g))
        self.middle_block = Seq(mid)
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c["channel_mult"]))):
            for i in range(c["num_res_blocks"] + 1):
                layers = [ResBlock(ch + skips.pop(), mc * mult, ted, g)]
                ch = mc * mult
                if ds in c["attention_resolutions"]:
                    layers.append(st(ch, c["transformer_depth"][level]))
                if level > 0 and i == c["num_res_blocks"]:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(Seq(layers))
        self.out = nn.Sequential(nn.GroupNorm(g, ch, eps=1e-5), nn.SiLU(), zero(nn.Conv2d(mc, 4, 3, padding=1)))

    def forward(self, x, t, context, y, w=None):
        temb = timestep_embedding(t, self.cfg["model_channels"])
        if w is not None and self.cfg["guidance_embed_dim"]:
            temb = temb + self.w_proj(guidance_embedding(w, self.cfg["guidance_embed_dim"]))
        emb = self.time_embed(temb) + self.label_emb(y)
        hs, h = [], x
        for blk in self.input_blocks:
            h = blk(h, emb, context)
            hs.append(h)
        h = self.middle_block(h, emb, context)
        for blk in self.output_blocks:
            h = blk(torch.cat([h, hs.pop()], dim=1), emb, context)
        return self.out(h)


class Denoiser:
    """DiscreteDenoiser with EpsScaling (§5.2): D(x, σ) = x − σ·ε(x/√(σ²+1), index(σ))."""

    def __init__(self, sigmas: torch.Tensor):
        self.sigmas = sigmas

    def index(self, sigma: torch.Tensor) -> torch.Tensor:
        return (sigma[:, None] - self.sigmas.to(sigma.device)[None]).abs().argmin(dim=1)

    def __call__(self, net, x, sigma, context, y, w=None):
        s = sigma.reshape(-1, 1, 1, 1)
        eps = net(x / torch.sqrt(s * s + 1), self.index(sigma), context, y, w)
        return x - s * eps


# ---------------------------------------------------------------------------------------------
# KL autoencoder (LDM names)


def norm(ch: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, ch, eps=1e-6)


class VResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.norm1, self.conv1 = norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = norm(cout, groups), nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class VAttn(nn.Module):
    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.norm = norm(ch, groups)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(ch, ch, 1) for _ in range(4))

    def forward(self, x):
        b, c, h, w = x.shape
        n = self.norm(x)
        q, k, v = (m(n).reshape(b, 1, c, h * w).transpose(2, 3) for m in (self.q, self.k, self.v))
        o = F.scaled_dot_product_attention(q, k, v).transpose(2, 3).reshape(b, c, h, w)
        return x + self.proj_out(o)


class VDown(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class VMid(nn.Module):
    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.block_1, self.attn_1, self.block_2 = VResnetBlock(ch, ch, groups), VAttn(ch, groups), VResnetBlock(ch, ch, groups)

    def forward(self, x):
        return self.block_2(self.attn_1(self.block_1(x)))


class Level(nn.Module):
    pass


class Encoder(nn.Module):
    def __init__(self, ch, mult, nrb, z, groups):
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        self.down = nn.ModuleList()
        cin = ch
        for i, m in enumerate(mult):
            lv = Level()
            lv.block = nn.ModuleList()
            for _ in range(nrb):
                lv.block.append(VResnetBlock(cin, ch * m, groups))
                cin = ch * m
            if i != len(mult) - 1:
                lv.downsample = VDown(cin)
            self.down.append(lv)
        self.mid = VMid(cin, groups)
        self.norm_out = norm(cin, groups)
        self.conv_out = nn.Conv2d(cin, 2 * z, 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for lv in self.down:
            for b in lv.block:
                h = b(h)
            if hasattr(lv, "downsample"):
                h = lv.downsample(h)
        return self.conv_out(F.silu(self.norm_out(self.mid(h))))


class Decoder(nn.Module):
    def __init__(self, ch, mult, nrb, z, groups):
        super().__init__()
        cin = ch * mult[-1]
        self.conv_in = nn.Conv2d(z, cin, 3, padding=1)
        self.mid = VMid(cin, groups)
        ups = []
        for i in reversed(range(len(mult))):
            lv = Level()
            lv.block = nn.ModuleList()
            for _ in range(nrb + 1):
                lv.block.append(VResnetBlock(cin, ch * mult[i], groups))
                cin = ch * mult[i]
            if i != 0:
                lv.upsample = Upsample(cin)
            ups.insert(0, lv)
        self.up = nn.ModuleList(ups)
        self.norm_out = norm(cin, groups)
        self.conv_out = nn.Conv2d(cin, 3, 3, padding=1)

    def forward(self, z):
        h = self.mid(self.conv_in(z))
        for lv in reversed(self.up):
            for b in lv.block:
                h = b(h)
            if hasattr(lv, "upsample"):
                h = lv.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


VAE_DEFAULTS = dict(ch=32, ch_mult=[1, 2, 2, 2], num_res_blocks=1, z_channels=4, groups=4)
SCALE_FACTOR = 0.13025


class AutoencoderKL(nn.Module):
    def __init__(self, **cfg):
        super().__init__()
        c = {**VAE_DEFAULTS, **cfg}
        self.cfg = c
        self.encoder = Encoder(c["ch"], c["ch_mult"], c["num_res_blocks"], c["z_channels"], c["groups"])
        self.decoder = Decoder(c["ch"], c["ch_mult"], c["num_res_blocks"], c["z_channels"], c["groups"])
        self.quant_conv = nn.Conv2d(2 * c["z_channels"], 2 * c["z_channels"], 1)
        self.post_quant_conv = nn.Conv2d(c["z_channels"], c["z_channels"], 1)

    def moments(self, x):
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def encode(self, x, generator=None, sample=True):
        """Image [-1,1] -> scaled latent (posterior sample × 0.13025, as `encode_first_stage`)."""
        mean, logvar = self.moments(x)
        if not sample:
            return mean * SCALE_FACTOR
        noise = torch.randn(mean.shape, generator=generator, device=mean.device) if generator is not None else torch.randn_like(mean)
        return (mean + torch.exp(0.5 * logvar) * noise) * SCALE_FACTOR

    def decode(self, z):
        """Scaled latent -> image in [-1, 1] (unclamped)."""
        return self.decoder(self.post_quant_conv(z / SCALE_FACTOR))


def count(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
