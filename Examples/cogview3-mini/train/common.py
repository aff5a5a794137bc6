"""Shared plumbing for the CogView3-mini training stages: device, seeding, atomic resumable checkpoints,
the frozen text encoder and the sizes every stage agrees on.

Resuming: every stage keeps `<ckpt>/<stage>/state.pt` (model, optimizer, EMA, step, RNG state), written
atomically (temporary file + os.replace) every SAVE_MINUTES and at the end; a stage that finds it
continues from its step. A finished stage writes `<ckpt>/<stage>/DONE` and is skipped by run_all.sh.
Batches are a pure function of (stage, step): scene seeds step*B … step*B+B-1, so a resumed run sees
the same data it would have seen without the stop.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "data"))
sys.path.insert(0, str(HERE))

import scenes  # noqa: E402

BASE_SIZE = int(os.environ.get("MINI_BASE_SIZE", "64"))  # base image side (latent BASE_SIZE/8)
RELAY_SIZE = 2 * BASE_SIZE  # relay image side (×2, as CogView3)
MAX_TOKENS = 225  # FrozenT5Embedder(max_length=225)
SAVE_MINUTES = float(os.environ.get("MINI_SAVE_MINUTES", "5"))


def ckpt_root() -> Path:
    return Path(os.environ.get("MINI_CKPT", "/work/cogview3-mini-ckpt"))


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def setup_threads() -> None:
    """CPU threads for PyTorch: MINI_THREADS, default 1. On a shared, loaded machine two OpenMP threads
    spin-wait for each other: one VAE step took 3.6 CPU-seconds with 2 threads and 0.34 with 1."""
    torch.set_num_threads(max(1, int(os.environ.get("MINI_THREADS", "1"))))


def log(stage: str, msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())}Z [{stage}] {msg}", flush=True)


def atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_state(stage: str):
    p = ckpt_root() / stage / "state.pt"
    return torch.load(p, map_location="cpu", weights_only=False) if p.exists() else None


def mark_done(stage: str, info: dict) -> None:
    p = ckpt_root() / stage / "DONE"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")


def is_done(stage: str) -> bool:
    return (ckpt_root() / stage / "DONE").exists()


def require(stage: str) -> None:
    if not is_done(stage):
        raise SystemExit(f"stage '{stage}' has not finished ({ckpt_root() / stage}/DONE missing); run train/run_all.sh")


class Ema:
    """Exponential moving average of the trainable weights (kept in the checkpoint, exported)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # warm-up so early snapshots are not the init
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)


class Trainer:
    """Step loop with periodic atomic checkpoints. `state()` / `restore()` are the stage's own extras."""

    def __init__(self, stage: str, model, opt, ema: Ema | None, steps: int):
        self.stage, self.model, self.opt, self.ema, self.steps = stage, model, opt, ema, steps
        self.step = 0
        self.last_save = time.time()
        self.losses: list[float] = []
        s = load_state(stage)
        if s is not None:
            model.load_state_dict(s["model"])
            opt.load_state_dict(s["opt"])
            if ema is not None and s.get("ema") is not None:
                ema.shadow = s["ema"]
            self.step = s["step"]
            self.losses = s.get("losses", [])
            torch.set_rng_state(s["rng"])
            log(stage, f"resumed at step {self.step}/{steps}")

    def save(self) -> None:
        atomic_save(
            {
                "model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "ema": self.ema.shadow if self.ema else None, "step": self.step, "losses": self.losses,
                "rng": torch.get_rng_state(), "cfg": getattr(self.model, "cfg", None),
            },
            ckpt_root() / self.stage / "state.pt",
        )
        self.last_save = time.time()

    def after_step(self, loss: float, every: int = 10) -> None:
        self.step += 1
        self.losses.append(float(loss))
        if self.ema is not None:
            self.ema.update(self.model, self.step)
        if self.step % every == 0 or self.step == self.steps:
            recent = self.losses[-every:]
            log(self.stage, f"step {self.step}/{self.steps} loss {sum(recent) / len(recent):.5g}")
        if time.time() - self.last_save > SAVE_MINUTES * 60:
            self.save()

    def optimise(self, loss: torch.Tensor, clip: float | None = 1.0) -> None:
        """One optimizer step on `loss`, then the step bookkeeping."""
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.opt.step()
        self.after_step(loss.item())

    def finish(self, info: dict) -> None:
        """Last checkpoint, `final.pt` (EMA weights + config) and DONE with `info` and the final loss."""
        self.save()
        cfg = getattr(self.model, "cfg", None)
        atomic_save({"model": self.weights(), "cfg": cfg}, ckpt_root() / self.stage / "final.pt")
        tail = self.losses[-100:]
        mark_done(self.stage, {**info, "steps": self.steps, "cfg": cfg, "final_loss": sum(tail) / max(1, len(tail))})

    def weights(self) -> dict:
        return self.ema.shadow if self.ema is not None else self.model.state_dict()


# ---------------------------------------------------------------------------------------------
# Frozen text encoder


class TextEncoder:
    """transformers' T5Tokenizer + T5EncoderModel on the mini's HF folder; `__call__(captions)` gives
    last_hidden_state [B, 225, d_model] with CogView3's padding (EOS, pads, no attention mask)."""

    def __init__(self, folder: Path, dev):
        from transformers import T5EncoderModel, T5Tokenizer

        # from_pretrained converts spiece.model properly (transformers 5: T5Tokenizer(vocab_file=…) maps every word to <unk>).
        self.tok = T5Tokenizer.from_pretrained(str(folder))
        self.model = T5EncoderModel.from_pretrained(str(folder), torch_dtype=torch.float32).to(dev).eval()
        self.dev = dev
        self.cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, captions: list[str]) -> torch.Tensor:
        missing = [c for c in dict.fromkeys(captions) if c not in self.cache]
        if missing:
            ids = self.tok(missing, truncation=True, max_length=MAX_TOKENS, padding="max_length", return_tensors="pt").input_ids
            out = self.model(input_ids=ids.to(self.dev)).last_hidden_state.float().cpu()
            if len(self.cache) > 20000:
                self.cache.clear()
            for c, o in zip(missing, out):
                self.cache[c] = o
        return torch.stack([self.cache[c] for c in captions]).to(self.dev)


def t5_folder() -> Path:
    return ckpt_root() / "t5" / "t5-v1_1-mini"


def pick_caption(scene, gen: torch.Generator) -> str:
    """Training captions: the expanded caption 60% of the time (CogView3 trains on re-captions), the
    short caption otherwise, so that short prompts work without prompt expansion."""
    return scene.long if torch.rand((), generator=gen).item() < 0.6 else scene.short
