"""PyTorch reference samplers for CogView3-mini (the same math CogFlow runs in Swift), used by the
distillation teacher and by the evaluation. Each is a small function over a denoiser closure
`D(x, σ) -> x0` (cogview3-official.md §5.3, §5.4, §6.2, §7).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from models import Denoiser, UNet, sigma_table, size_vector, step_grid

SIGMAS = sigma_table()


def grid_sigmas(n: int) -> list[float]:
    """σ of the N-step grid, descending, with the final 0 appended."""
    return [float(SIGMAS[t]) for t in step_grid(n)] + [0.0]


def euler_edm(denoise, x: torch.Tensor, sigmas: list[float], start: int = 0, stop: int | None = None) -> torch.Tensor:
    """EulerEDMSampler with s_churn 0 from grid index `start` to `stop`: x ← x + (σ_{i+1} − σ_i)(x − D)/σ_i."""
    stop = len(sigmas) - 1 if stop is None else stop
    for i in range(start, stop):
        d = denoise(x, sigmas[i])
        x = d if sigmas[i + 1] == 0 else x + (sigmas[i + 1] - sigmas[i]) * (x - d) / sigmas[i]
    return x


def relay_update(x, d, zl, s, s_next, k: int, p: int):
    """One LinearRelayEDMSampler step (§6.2): x ← r·x + (1 − r + β)·D − β·zL, β = r·k/P − (k−1)/P."""
    r = s_next / s
    beta = r * k / p - (k - 1) / p
    return r * x + (1 - r + beta) * d - beta * zl


def relay_blur_step(x, d, zl, s, s_next, b: float, b_next: float):
    """The relay step for any blur fractions: x = F_b + σ·ε with F_b = D + b·(zL − D), stepped DDIM-like
    to (σ_next, b_next). With b = k/P, b_next = (k−1)/P it is exactly `relay_update`."""
    f, f_next = d + b * (zl - d), d + b_next * (zl - d)
    return f_next + (s_next / s) * (x - f)


def relay_edm(denoise, zl: torch.Tensor, eps: torch.Tensor, n: int, p: int) -> torch.Tensor:
    """LinearRelayEDMSampler(num_steps=n, partial_num_steps=p): start x = zL + σ[n−p]·ε, run the last p steps."""
    sig = grid_sigmas(n)
    x = zl + sig[n - p] * eps
    for i in range(n - p, n):
        x = relay_update(x, denoise(x, sig[i]), zl, sig[i], sig[i + 1], n - i, p)
    return x


def inverse_euler(x, x_next, s, s_next):
    """The D that makes one Euler step from (x, σ) land on x_next (distillation target)."""
    return x_next if s_next == 0 else x - s * (x_next - x) / (s_next - s)


def inverse_relay(x, x_next, zl, s, s_next, k: int, p: int):
    """The D that makes one relay step land on x_next."""
    r = s_next / s
    beta = r * k / p - (k - 1) / p
    return (x_next - r * x + beta * zl) / (1 - r + beta)


def make_denoiser(net: UNet, context, y, cfg: float | None, guidance: float | None = None):
    """D(x, σ): with `cfg` VanillaCFG on x0 (uncond = zero context, same y, batch order [uc, c]);
    with `guidance` (distilled nets) one conditional pass with w fed through w_proj."""
    den = Denoiser(SIGMAS.to(context.device))

    def d(x, s):
        b = x.shape[0]
        sig = torch.full((b,), float(s), device=x.device)
        if cfg is None:
            w = None if guidance is None else torch.full((b,), float(guidance), device=x.device)
            return den(net, x, sig, context, y, w)
        both = den(net, torch.cat([x, x]), torch.cat([sig, sig]), torch.cat([torch.zeros_like(context), context]),
                   torch.cat([y, y]))
        du, dc = both.chunk(2)
        return du + cfg * (dc - du)

    return d


def base_noise(seed: int, shape) -> torch.Tensor:
    """ε of the seed convention: manual_seed(seed); randn(shape) (first draw)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g)


def relay_noise(seed: int, shape) -> tuple[torch.Tensor, torch.Tensor]:
    """(posterior noise, ε) of the seed convention: one generator, first draw for the encoder, second for ε."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def to_png_tensor(img: torch.Tensor) -> torch.Tensor:
    """Decoded [-1,1] -> uint8 values by truncation (§6.1), returned as float in [0,255]."""
    return torch.floor(((img + 1) / 2).clamp(0, 1) * 255)


def handover(vae, img_png: torch.Tensor, seed: int) -> torch.Tensor:
    """Official hand-over: 8-bit image -> [-1,1] -> bilinear ×2 -> encode (sampled, first draw) × 0.13025."""
    x = img_png / 255 * 2 - 1
    up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    mean, logvar = vae.moments(up)
    noise, _ = relay_noise(seed, tuple(mean.shape))
    return (mean + torch.exp(0.5 * logvar) * noise.to(mean.device)) * 0.13025


@torch.no_grad()
def generate(models: dict, context: torch.Tensor, seed: int, base_size: int, plan: str = "relay"):
    """Two-stage pipeline for one prompt. plan: 'base' (base only), 'relay' (50 + 12 steps, CFG 7.5),
    'direct' (the base model sampled at the relay size), 'distilled-4+1', 'distilled-8+2'.
    Returns (final image [1,3,H,W] in [0,255], base image in [0,255] or None)."""
    vae = models["vae"]
    dev = context.device
    size = 2 * base_size if plan == "direct" else base_size
    y = size_vector(size, size, 1, dev)
    eps = base_noise(seed, (1, 4, size // 8, size // 8)).to(dev)
    if plan.startswith("distilled"):
        steps, net = (4, models["base4"]) if plan == "distilled-4+1" else (8, models["base8"])
        den = make_denoiser(net, context, y, None, 7.5)
    else:
        steps, den = 50, make_denoiser(models["base"], context, y, 7.5)
    sig = grid_sigmas(steps)
    z = euler_edm(den, eps * math.sqrt(1 + sig[0] ** 2), sig)
    img = to_png_tensor(vae.decode(z))
    if plan in ("base", "direct"):
        return img, None
    zl = handover(vae, img, seed)
    _, eps_r = relay_noise(seed, tuple(zl.shape))
    y2 = size_vector(2 * base_size, 2 * base_size, 1, dev)
    if plan == "relay":
        z2 = relay_edm(make_denoiser(models["relay"], context, y2, 7.5), zl, eps_r.to(dev), 24, 12)
    elif plan == "distilled-4+1":
        z2 = relay_edm(make_denoiser(models["relay1"], context, y2, None, 7.5), zl, eps_r.to(dev), 5, 1)
    else:
        z2 = relay_edm(make_denoiser(models["relay2"], context, y2, None, 7.5), zl, eps_r.to(dev), 5, 2)
    return to_png_tensor(vae.decode(z2)), img
