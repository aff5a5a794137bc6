#!/usr/bin/env python3
"""Makes the ModelIO test fixtures under Tests/Fixtures/modelio (small files only).

    python3 Tests/tools/make_modelio_fixtures.py [--out Tests/Fixtures/modelio]

Good files are written by the reference writers (torch.save, safetensors.torch.save_file) and their
contents recorded in expected.json; bad files are built byte by byte. PNGs are written by a minimal
encoder in this file (zlib + struct) so that every color type and bit depth is covered exactly.
The malicious pickles would create /tmp/cogflow_modelio_pwned_* if anything ever executed them;
this script only writes them, it never loads them.
"""
import argparse
import collections
import io
import json
import os
import pickle
import shutil
import struct
import zipfile
import zlib

import numpy
import safetensors
import safetensors.torch
import torch

SEED = 1234


def values(t):
    return [float(v) for v in t.detach().reshape(-1).to(torch.float64).tolist()]


def describe(sd):
    out = {}
    for k, t in sd.items():
        dtype = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
                 torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL", torch.float64: "F64",
                 torch.int16: "I16", torch.int8: "I8"}[t.dtype]
        out[k] = {"dtype": dtype, "shape": list(t.shape), "values": values(t)}
    return out


class TinyUNet(torch.nn.Module):
    """A few layers named like the sgm UNet (input_blocks.N.M..., time_embed, out)."""

    def __init__(self):
        super().__init__()
        self.time_embed = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.SiLU(), torch.nn.Linear(8, 8))
        self.input_blocks = torch.nn.ModuleList([torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1))])
        self.out = torch.nn.Sequential(torch.nn.GroupNorm(2, 4), torch.nn.SiLU(), torch.nn.Conv2d(4, 4, 3, padding=1))


class Wrapper(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.diffusion_model = TinyUNet()


class Engine(torch.nn.Module):
    """SATDiffusionEngine's attribute layout: model.diffusion_model, first_stage_model, conditioner."""

    def __init__(self):
        super().__init__()
        self.model = Wrapper()
        self.first_stage_model = torch.nn.Conv2d(3, 2, 1)
        self.conditioner = torch.nn.Linear(2, 2)


def make_sat(out, expected):
    torch.manual_seed(SEED)
    engine = Engine()
    engine.model.diffusion_model.out.half()  # stored dtypes differ per tensor, as in a mixed checkpoint
    engine.model.diffusion_model.time_embed[2].to(torch.bfloat16)
    sd = engine.state_dict()  # an OrderedDict carrying `_metadata`, exactly what SAT saves
    folder = os.path.join(out, "sat")
    os.makedirs(os.path.join(folder, "1"), exist_ok=True)
    with open(os.path.join(folder, "latest"), "w") as f:
        f.write("1\n")
    torch.save({"module": sd}, os.path.join(folder, "1", "mp_rank_00_model_states.pt"))
    expected["sat"] = describe(sd)
    # The same state dict under a 'release' iteration, plus the client state SAT adds when training.
    rel = os.path.join(out, "sat_release")
    os.makedirs(os.path.join(rel, "release"), exist_ok=True)
    with open(os.path.join(rel, "latest"), "w") as f:
        f.write("release")
    torch.save({"module": sd, "iteration": 1000, "client_lr_scheduler": {"num_iters": 5}},
               os.path.join(rel, "release", "mp_rank_00_model_states.pt"))


def make_views(out, expected):
    torch.manual_seed(SEED + 1)
    base = torch.randn(4, 6)
    sd = collections.OrderedDict()
    sd["contiguous"] = base
    sd["transposed"] = base.t()  # strides (1, 6): not row-major
    sd["sliced"] = base[1:3]  # storage offset 6
    sd["column"] = base[:, 2]  # offset 2, stride 6
    sd["expanded"] = torch.arange(3, dtype=torch.float32).expand(2, 3)  # stride 0
    sd["long"] = torch.arange(5, dtype=torch.int64) - 2
    sd["bf16"] = torch.randn(3, 2).to(torch.bfloat16)
    sd["scalar"] = torch.tensor(3.5)
    sd["param"] = torch.nn.Parameter(torch.randn(2, 2))
    torch.save(sd, os.path.join(out, "views.pt"))
    expected["views"] = describe(sd)
    # The same content with deflated records (torch writes stored ones; other zip tools may not).
    with zipfile.ZipFile(os.path.join(out, "views.pt")) as src, \
            zipfile.ZipFile(os.path.join(out, "views_deflated.pt"), "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    with zipfile.ZipFile(os.path.join(out, "views.pt")) as src:
        write_zip64(os.path.join(out, "views_zip64.pt"), [(i.filename, src.read(i.filename)) for i in src.infolist()])


def write_zip64(path, entries):
    """A stored zip whose every size and offset lives in ZIP64 fields (as torch writes files > 4 GiB)."""
    out, central = b"", b""
    for name, data in entries:
        n = name.encode()
        crc = zlib.crc32(data) & 0xFFFFFFFF
        local_extra = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(n),
                           len(local_extra)) + n + local_extra + data
        extra = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                               len(n), len(extra), 0, 0, 0, 0, 0xFFFFFFFF) + n + extra
    cd_offset = len(out)
    out += central
    eocd64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(entries), len(entries), len(central),
                       cd_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, eocd64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    with open(path, "wb") as f:
        f.write(out)


def make_safetensors(out, expected):
    torch.manual_seed(SEED + 2)
    sd = {
        "a.f32": torch.randn(2, 3),
        "b.f16": torch.randn(4).half(),
        "c.bf16": torch.randn(2, 2).to(torch.bfloat16),
        "d.i64": torch.tensor([-1, 0, 7], dtype=torch.int64),
        "e.u8": torch.tensor([0, 255, 3], dtype=torch.uint8),
        "f.empty": torch.zeros(0, 3),
        "g.scalar": torch.tensor(2.5),
    }
    safetensors.torch.save_file(sd, os.path.join(out, "plain.safetensors"), metadata={"format": "pt", "note": "x"})
    expected["plain"] = describe(sd)


def make_hf(out, expected):
    torch.manual_seed(SEED + 3)
    d, heads, dkv, dff, vocab, layers = 8, 2, 4, 12, 16, 2
    sd = {"shared.weight": torch.randn(vocab, d), "encoder.final_layer_norm.weight": torch.ones(d)}
    for i in range(layers):
        p = f"encoder.block.{i}.layer."
        for n in "qkvo":
            sd[p + f"0.SelfAttention.{n}.weight"] = torch.randn(heads * dkv, d) if n != "o" else torch.randn(d, heads * dkv)
        if i == 0:
            sd[p + "0.SelfAttention.relative_attention_bias.weight"] = torch.randn(32, heads)
        sd[p + "0.layer_norm.weight"] = torch.ones(d)
        sd[p + "1.DenseReluDense.wi_0.weight"] = torch.randn(dff, d)
        sd[p + "1.DenseReluDense.wi_1.weight"] = torch.randn(dff, d)
        sd[p + "1.DenseReluDense.wo.weight"] = torch.randn(d, dff)
        sd[p + "1.layer_norm.weight"] = torch.ones(d)
    folder = os.path.join(out, "hf_sharded")
    os.makedirs(folder, exist_ok=True)
    keys = sorted(sd)
    shards = [keys[: len(keys) // 2], keys[len(keys) // 2:]]
    weight_map = {}
    for i, ks in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        safetensors.torch.save_file({k: sd[k].contiguous() for k in ks}, os.path.join(folder, name),
                                    metadata={"format": "pt"})
        for k in ks:
            weight_map[k] = name
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(t.numel() * 4 for t in sd.values())}, "weight_map": weight_map},
                  f, indent=1, sort_keys=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"model_type": "t5", "architectures": ["T5EncoderModel"], "d_model": d, "num_heads": heads,
                   "d_kv": dkv, "d_ff": dff, "num_layers": layers, "vocab_size": vocab,
                   "feed_forward_proj": "gated-gelu"}, f, indent=1)
    expected["hf_sharded"] = describe(sd)
    # A single-file HF folder.
    single = os.path.join(out, "hf_single")
    os.makedirs(single, exist_ok=True)
    safetensors.torch.save_file({k: sd[k] for k in keys[:3]}, os.path.join(single, "model.safetensors"))
    shutil.copy(os.path.join(folder, "config.json"), os.path.join(single, "config.json"))


# ----- hostile inputs -------------------------------------------------------------------------

class Payload:
    """Pickles as a call of `fn(arg)`; never unpickled here."""

    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def torch_zip(path, pkl, storages=None, prefix="archive"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", pkl)
        z.writestr(f"{prefix}/byteorder", "little")
        for k, v in (storages or {}).items():
            z.writestr(f"{prefix}/data/{k}", v)
        z.writestr(f"{prefix}/version", "3\n")


def safetensors_bytes(header, data=b""):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def make_bad(out):
    bad = os.path.join(out, "bad")
    os.makedirs(bad, exist_ok=True)
    system_cmd = "touch /tmp/cogflow_modelio_pwned_system"
    eval_src = "open('/tmp/cogflow_modelio_pwned_eval', 'w').write('ran')"
    # os.system pickles as posix.system; the state dict around it looks ordinary.
    sd = collections.OrderedDict([("weight", Payload(os.system, system_cmd))])
    torch_zip(os.path.join(bad, "evil_system.pt"), pickle.dumps({"module": sd}, protocol=2))
    with open(os.path.join(bad, "evil_system.pkl"), "wb") as f:
        f.write(pickle.dumps(Payload(os.system, system_cmd), protocol=2))
    with open(os.path.join(bad, "evil_eval.pkl"), "wb") as f:
        f.write(pickle.dumps(Payload(eval, eval_src), protocol=2))
    torch_zip(os.path.join(bad, "evil_eval.pt"), pickle.dumps({"x": Payload(eval, eval_src)}, protocol=2))
    with open(os.path.join(bad, "evil_eval_proto4.pkl"), "wb") as f:  # STACK_GLOBAL instead of GLOBAL
        f.write(pickle.dumps([1, Payload(eval, eval_src)], protocol=4))
    # SAT's DeepSpeed save adds np.random.get_state() next to the state dict: numpy globals are read as
    # opaque placeholders. A pickle.loads of anything else from numpy (here numpy.load) is still refused.
    torch_zip(os.path.join(bad, "numpy_array.pt"), pickle.dumps({"np_rng_state": numpy.random.get_state()},
                                                                protocol=2))
    torch_zip(os.path.join(bad, "numpy_load.pt"), pickle.dumps({"x": Payload(numpy.load, "/etc/passwd")},
                                                               protocol=2))

    good = os.path.join(out, "views.pt")
    blob = open(good, "rb").read()
    with open(os.path.join(bad, "truncated.pt"), "wb") as f:
        f.write(blob[: len(blob) // 2])
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(os.path.join(bad, "missing_storage.pt"), "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith("/data/0"):
                dst.writestr(info.filename, src.read(info.filename))

    with open(os.path.join(bad, "huge_header.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", 1 << 60) + b'{"a":{}}')
    with open(os.path.join(bad, "offsets_outside.safetensors"), "wb") as f:
        f.write(safetensors_bytes({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8))
    with open(os.path.join(bad, "huge_shape.safetensors"), "wb") as f:
        f.write(safetensors_bytes({"w": {"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 16]}},
                                  b"\0" * 16))
    with open(os.path.join(bad, "overlap.safetensors"), "wb") as f:
        f.write(safetensors_bytes({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                   "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12))
    with open(os.path.join(bad, "length_mismatch.safetensors"), "wb") as f:
        f.write(safetensors_bytes({"a": {"dtype": "F16", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8))
    with open(os.path.join(bad, "bad_json.safetensors"), "wb") as f:
        h = b'{"a": {"dtype": "F32", '
        f.write(struct.pack("<Q", len(h)) + h)
    with open(os.path.join(bad, "unknown_dtype.safetensors"), "wb") as f:
        f.write(safetensors_bytes({"a": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}, b"\0" * 2))
    sat = os.path.join(bad, "sat_bad_latest")
    os.makedirs(sat, exist_ok=True)
    with open(os.path.join(sat, "latest"), "w") as f:
        f.write("../../etc")
    hf = os.path.join(bad, "hf_escape")
    os.makedirs(hf, exist_ok=True)
    with open(os.path.join(hf, "config.json"), "w") as f:
        f.write("{}")
    with open(os.path.join(hf, "model.safetensors.index.json"), "w") as f:
        json.dump({"weight_map": {"w": "../plain.safetensors"}}, f)


# ----- PNG ----------------------------------------------------------------------------------------

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width, height, color_type, depth, rows, palette=None, trns=None, texts=()):
    raw = b"".join(b"\0" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0))
    if palette is not None:
        out += chunk(b"PLTE", bytes(palette))
    if trns is not None:
        out += chunk(b"tRNS", bytes(trns))
    for kind, key, text in texts:
        if kind == b"tEXt":
            out += chunk(b"tEXt", key.encode("latin-1") + b"\0" + text.encode("latin-1"))
        elif kind == b"zTXt":
            out += chunk(b"zTXt", key.encode("latin-1") + b"\0\0" + zlib.compress(text.encode("latin-1")))
        else:
            out += chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8"))
    out += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    return out


def make_png(out, expected):
    folder = os.path.join(out, "png")
    os.makedirs(folder, exist_ok=True)
    rng = numpy.random.default_rng(SEED)
    w, h = 5, 3
    cases = {}

    def emit(name, channels, depth, samples, data):
        with open(os.path.join(folder, name + ".png"), "wb") as f:
            f.write(data)
        cases[name] = {"width": w, "height": h, "channels": channels, "bit_depth": depth,
                       "samples": [int(v) for v in samples.reshape(-1)]}

    for name, ct, ch in [("gray", 0, 1), ("gray_alpha", 4, 2), ("rgb", 2, 3), ("rgba", 6, 4)]:
        for depth in (8, 16):
            s = rng.integers(0, 1 << depth, size=(h, w, ch))
            rows = [s[y].astype(">u2" if depth == 16 else "u1").tobytes() for y in range(h)]
            emit(f"{name}{depth}", ch, depth, s, png(w, h, ct, depth, rows))
    # 1-bit gray: libpng scales samples to 8 bits (0 -> 0, 1 -> 255).
    bits = rng.integers(0, 2, size=(h, w))
    rows = [numpy.packbits(bits[y]).tobytes() for y in range(h)]
    emit("gray1", 1, 8, bits * 255, png(w, h, 0, 1, rows))
    # Palette without and with transparency (tRNS gives an alpha channel).
    pal = rng.integers(0, 256, size=(4, 3))
    idx = rng.integers(0, 4, size=(h, w))
    rows = [idx[y].astype("u1").tobytes() for y in range(h)]
    emit("palette", 3, 8, pal[idx], png(w, h, 3, 8, rows, palette=pal.reshape(-1).tolist()))
    alpha = numpy.array([255, 0, 128, 7])
    emit("palette_trns", 4, 8, numpy.concatenate([pal[idx], alpha[idx][..., None]], axis=-1),
         png(w, h, 3, 8, rows, palette=pal.reshape(-1).tolist(), trns=alpha.tolist()))
    texts = [(b"tEXt", "Title", "caf\u00e9 latin-1"), (b"iTXt", "prompt", "\u4e00\u53ea\u732b \u2014 a cat"),
             (b"zTXt", "comment", "compressed text")]
    s = rng.integers(0, 256, size=(h, w, 3))
    data = png(w, h, 2, 8, [s[y].astype("u1").tobytes() for y in range(h)], texts=texts)
    emit("text", 3, 8, s, data)
    cases["text"]["text"] = [{"keyword": k, "text": t, "international": kind == b"iTXt"} for kind, k, t in texts]
    with open(os.path.join(out, "bad", "cut.png"), "wb") as f:
        f.write(data[: len(data) // 2])
    # A header that claims 60000x60000 RGBA16 in a few hundred bytes.
    big = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 16, 6, 0, 0, 0))
    big += chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    with open(os.path.join(out, "bad", "huge_dimensions.png"), "wb") as f:
        f.write(big)
    expected["png"] = cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Fixtures", "modelio"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    expected = {"_provenance": {"script": "Tests/tools/make_modelio_fixtures.py", "seed": SEED,
                                "torch": torch.__version__, "numpy": numpy.__version__,
                                "safetensors": safetensors.__version__}}
    make_sat(out, expected)
    make_views(out, expected)
    make_safetensors(out, expected)
    make_hf(out, expected)
    make_bad(out)
    make_png(out, expected)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
