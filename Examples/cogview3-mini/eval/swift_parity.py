"""Check that CogFlow (Swift) and the PyTorch reference pipeline of train/sampling.py give the same
pictures from the exported mini: runs `cogflow run Workflows/<w>.yaml --models DIR --set size=…` for
relay-1024, distilled-4+1 and distilled-8+2 and compares each PNG with `sampling.generate` for the same
prompt and seed (8-bit levels; a level or two may differ where a value sits on a level boundary).

    python3 eval/swift_parity.py --cogflow .build/release/cogflow --repo . --models DIR [--seed 0]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "train"))
import evaluate  # noqa: E402
import scenes  # noqa: E402
from sampling import generate  # noqa: E402

PLANS = {"relay-1024": "relay", "distilled-4+1": "distilled-4+1", "distilled-8+2": "distilled-8+2"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cogflow", required=True)
    ap.add_argument("--repo", required=True, help="the CogFlow checkout holding Workflows/")
    ap.add_argument("--models", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base-size", type=int, default=64)
    a = ap.parse_args()
    torch.set_num_threads(1)
    models, encode = evaluate.load_all(Path(a.models), "cpu")
    prompt = scenes.heldout_prompts(a.seed + 1)[a.seed].short
    worst = 0
    with tempfile.TemporaryDirectory() as tmp:
        for wf, plan in PLANS.items():
            if any(k not in models for k in evaluate.ROWS[[r[1] for r in evaluate.ROWS].index(plan)][2]):
                print(f"{wf}: models missing, skipped")
                continue
            out = Path(tmp) / f"{wf}.png"
            subprocess.run(
                [a.cogflow, "run", str(Path(a.repo) / "Workflows" / f"{wf}.yaml"), "--models", a.models, "--cache",
                 str(Path(tmp) / "cache"), "--quiet", "--set", f"size={a.base_size}", "--set", f"seed={a.seed}",
                 "--set", f"prompt={prompt}", "--set", f"output={out}"],
                check=True,
            )
            swift = np.asarray(Image.open(out).convert("RGB")).astype(int)
            img, _ = generate(models, encode(prompt), a.seed, a.base_size, plan)
            torch_img = img[0].permute(1, 2, 0).numpy().astype(int)
            d = np.abs(swift - torch_img)
            worst = max(worst, int(d.max()))
            print(f"{wf}: {swift.shape[1]}x{swift.shape[0]}, max level difference {d.max()}, mean {d.mean():.2e}")
    if worst > 2:
        raise SystemExit(f"CogFlow and the PyTorch pipeline differ by up to {worst} levels")


if __name__ == "__main__":
    main()
