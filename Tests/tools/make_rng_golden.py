#!/usr/bin/env python3
"""Golden values for TorchGenerator (Sources/Tensor/TorchGenerator.swift) from PyTorch's CPU generator.

Run from the repository root:

    python3 Tests/tools/make_rng_golden.py

It writes Tests/Fixtures/rng/golden.json. Values are stored as float32 bit patterns (uint32) so that
the Swift tests compare bit for bit. Each kernel is produced in a child process with
ATEN_CPU_CAPABILITY set before torch is imported:

- "avx2":   ATEN_CPU_CAPABILITY=avx2 (also checked equal to the machine's own capability when that is
            AVX2 or AVX512, since torch's AVX512 build dispatches normal_ to its AVX2 kernel);
- "scalar": ATEN_CPU_CAPABILITY=default (libm logf/cosf/sinf; exact only with the same C library).

Besides randn/rand of small and large shapes and a mixed call sequence, the script sweeps torch's
float32 Box-Muller over every possible 24-bit uniform: it sets the generator state (torch.set_rng_state)
so that the engine returns chosen words, which makes torch.randn transform uniforms we choose.
  sweep "radius": u1 = k/2^24 for every k, u2 = 0, so the cosine lanes hold the radius of every u1;
  sweep "angle":  u1 fixed so that the radius is a power of two, u2 = k/2^24 for every k, so the lanes
                  hold cos and sin of every angle, scaled exactly.
Each sweep is stored as 256 position-weighted checksums (see checksum()), one per 65536 values of k.
"""

import hashlib
import json
import os
import platform
import struct
import subprocess
import sys

SEEDS = [0, 1, 42, 2**32 + 5]
SHAPES = [[1], [3], [15], [16], [17], [33], [2, 4, 8, 8]]
LARGE_SHAPES = [[1, 4, 64, 64], [1, 4, 128, 128]]
MIXED_SEED = 42
MIXED = [
    ["randn", [3]], ["rand", [5]], ["randn", [20]], ["randn", [1]], ["randn", [15]], ["randn", [1]],
    ["rand", [17]], ["randn", [16]], ["randn", [2]], ["randn", [2, 4, 8, 8]], ["randn", [1]],
    ["randn", [1]], ["rand", [1]], ["randn", [31]],
]
SWEEP_CHUNK = 1 << 16
MASK64 = (1 << 64) - 1


def checksum(bits):
    """Position-weighted sum of uint32 words mod 2^64: sum(bits[i] * w[i]), w[i] = (i*G + C) | 1.

    Any single changed word changes it (the weights are odd). Mirrored in TorchGeneratorTests.swift."""
    import numpy as np
    bits = np.asarray(bits, dtype=np.uint64)
    i = np.arange(bits.size, dtype=np.uint64)
    with np.errstate(over="ignore"):
        w = (i * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x632BE59BD9B4E019)) | np.uint64(1)
        return int(np.sum(bits * w, dtype=np.uint64))


def worker():
    import numpy as np
    import torch

    def bits(t):
        return t.contiguous().numpy().astype(np.float32).view(np.uint32).reshape(-1)

    out = {"capability": torch.backends.cpu.get_cpu_capability()}

    cases = []
    for seed in SEEDS:
        for shape in SHAPES:
            torch.manual_seed(seed)
            n = bits(torch.randn(shape))
            torch.manual_seed(seed)
            u = bits(torch.rand(shape))
            cases.append({"seed": seed, "shape": shape, "randn": n.tolist(), "rand": u.tolist()})
    out["cases"] = cases

    large = []
    for seed in SEEDS:
        for shape in LARGE_SHAPES:
            torch.manual_seed(seed)
            n = bits(torch.randn(shape)).reshape(-1)
            idx = sorted({0, 1, 15, 16, 17, n.size - 1, *range(97, n.size, n.size // 29)})
            large.append({"seed": seed, "shape": shape, "randn_checksum": str(checksum(n)),
                          "randn_samples": [[int(i), int(n[i])] for i in idx]})
    out["large"] = large

    torch.manual_seed(MIXED_SEED)
    steps = []
    for op, shape in MIXED:
        t = torch.randn(shape) if op == "randn" else torch.rand(shape)
        steps.append({"op": op, "shape": shape, "values": bits(t).reshape(-1).tolist()})
    out["mixed"] = {"seed": MIXED_SEED, "steps": steps}

    # torch.manual_seed uses only the low 32 bits of the seed for the engine.
    torch.manual_seed(2**32 + 5)
    a = bits(torch.randn(40))
    torch.manual_seed(5)
    b = bits(torch.randn(40))
    out["seed_low32_equivalent"] = bool((a == b).all())

    torch.manual_seed(0)
    out["probe_checksum"] = str(checksum(bits(torch.randn(1000))))

    out["sweeps"] = sweeps(torch, np, bits)
    return out


def sweeps(torch, np, bits):
    base = bytearray(torch.get_rng_state().numpy().tobytes())
    # CPUGeneratorImplState: seed (u64), left (i32), seeded (i32), next (u64), state[624] (u64), ...
    # With left = 624 and next = 0 the engine hands out state[0..622] untwisted, tempered.
    struct.pack_into("<Qiiq", base, 0, 0, 624, 1, 0)

    def untemper(y):
        y = np.asarray(y, dtype=np.uint64)
        y ^= y >> np.uint64(18)
        y ^= (y << np.uint64(15)) & np.uint64(0xEFC60000)
        t = y.copy()
        for _ in range(5):
            t = y ^ ((t << np.uint64(7)) & np.uint64(0x9D2C5680))
        y = t & np.uint64(0xFFFFFFFF)
        t = y.copy()
        for _ in range(3):
            t = y ^ (t >> np.uint64(11))
        return t & np.uint64(0xFFFFFFFF)

    def transform(u1k, u2k):
        """torch.randn's float32 Box-Muller on uniforms u1k/2^24 (radius) and u2k/2^24 (angle)."""
        nb = u1k.size // 8
        blocks = np.empty((nb, 16), dtype=np.uint32)
        blocks[:, :8] = u1k.reshape(nb, 8)
        blocks[:, 8:] = u2k.reshape(nb, 8)
        words = blocks.reshape(-1)
        result = np.empty(words.size, dtype=np.uint32)
        step = 38 * 16  # at most 623 untwisted words per state
        state = bytearray(base)
        for i in range(0, words.size, step):
            chunk = words[i:i + step]
            s = np.zeros(624, dtype=np.uint64)
            s[:chunk.size] = untemper(chunk)
            state[24:24 + 624 * 8] = s.tobytes()
            torch.set_rng_state(torch.frombuffer(bytearray(state), dtype=torch.uint8))
            result[i:i + chunk.size] = bits(torch.randn(chunk.size))
        return result

    # Self-check of the crafted state: rand must return exactly the chosen uniforms.
    probe = np.arange(608, dtype=np.uint32) * 27449 % (1 << 24)
    s = np.zeros(624, dtype=np.uint64)
    s[:608] = untemper(probe)
    state = bytearray(base)
    state[24:24 + 624 * 8] = s.tobytes()
    torch.set_rng_state(torch.frombuffer(state, dtype=torch.uint8))
    got = torch.rand(608).numpy()
    assert (got == probe.astype(np.float32) * np.float32(2**-24)).all(), "crafted generator state broken"

    k = np.arange(1 << 24, dtype=np.uint32)
    radius_sweep = transform(k, np.zeros_like(k))
    radius = radius_sweep.reshape(-1, 16)[:, :8].reshape(-1).view(np.float32)
    # A u1 whose radius is a power of two, so that radius * cos and radius * sin are exact.
    mant = radius.view(np.uint32) & 0x7FFFFF
    candidates = np.nonzero((mant == 0) & (radius > 0))[0]
    r_k = int(candidates[np.argmin(np.abs(np.log2(radius[candidates])))])
    angle_sweep = transform(np.full_like(k, r_k), k)

    def chunked(words):
        # 16 outputs per 8 values of k: SWEEP_CHUNK values of k are 2 * SWEEP_CHUNK outputs.
        per = 2 * SWEEP_CHUNK
        return [str(checksum(words[i:i + per])) for i in range(0, words.size, per)]

    return {"chunk_k": SWEEP_CHUNK, "radius_k_for_angle": r_k, "radius_value": float(radius[r_k]),
            "radius": chunked(radius_sweep), "angle": chunked(angle_sweep)}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        json.dump(worker(), sys.stdout)
        return
    import numpy
    import torch
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    kernels = {}
    for name, capability in [("avx2", "avx2"), ("scalar", "default")]:
        env = dict(os.environ, ATEN_CPU_CAPABILITY=capability)
        text = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker"], env=env,
                              check=True, capture_output=True, text=True).stdout
        kernels[name] = json.loads(text)
        print(name, "computed with capability", kernels[name]["capability"], file=sys.stderr)
    own = torch.backends.cpu.get_cpu_capability()
    if own in ("AVX2", "AVX512"):
        # This process runs torch's own dispatch: it must give what the forced AVX2 kernel gave.
        torch.manual_seed(0)
        probe = checksum(torch.randn(1000).numpy().view(numpy.uint32))
        assert str(probe) == kernels["avx2"]["probe_checksum"], "native dispatch differs from avx2"
    doc = {
        "made_by": "Tests/tools/make_rng_golden.py",
        "command": "python3 Tests/tools/make_rng_golden.py",
        "torch_version": torch.__version__,
        "numpy_version": numpy.__version__,
        "python_version": platform.python_version(),
        "libc": " ".join(platform.libc_ver()),
        "machine_capability": own,
        "tolerance": "exact: every value is a float32 bit pattern and must match bit for bit",
        "note": ("kernels.avx2 is what torch produces on x86-64 with AVX2/AVX512; kernels.scalar is "
                 "ATEN_CPU_CAPABILITY=default, whose large-tensor randn uses libm logf/cosf/sinf of "
                 "the libc above. torch seeds MT19937 with the low 32 bits of the seed "
                 "(seed_low32_equivalent). checksum(words) = sum(words[i] * ((i * 0x9E3779B97F4A7C15 + "
                 "0x632BE59BD9B4E019) | 1)) mod 2^64 over the uint32 bit patterns."),
        "seeds": SEEDS,
        "kernels": kernels,
    }
    path = os.path.join(root, "Tests", "Fixtures", "rng", "golden.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    print("wrote", path, os.path.getsize(path), "bytes, sha256", digest, file=sys.stderr)


if __name__ == "__main__":
    main()
