#!/usr/bin/env python3
"""Writes a full-size CogView3 UNet of random float16 data, for timing `cogflow inspect` on real sizes.

    python3 Tests/tools/make_large_checkpoint.py /tmp/cogflow-large

Makes <dir>/unet.safetensors (sgm names, 5.8 GB) and the SAT layout <dir>/sat/latest +
<dir>/sat/1/mp_rank_00_model_states.pt ({'module': {'model.diffusion_model.' + name: tensor}}, written
by torch.save from memory-mapped slices of the safetensors file, so RAM use stays small). Key names
and shapes come from /work/shared/reference/cogview3-state-dict-shapes.txt (or --shapes). Not a
fixture: delete the folder afterwards.
"""
import argparse
import json
import os
import struct

import numpy
import torch


def shapes(path):
    out, inside = {}, False
    for line in open(path):
        if line.startswith("## "):
            inside = line.startswith("## UNet")
            continue
        if inside and "(" in line:
            name, dims = line.split(" (", 1)
            out[name.strip()] = [int(d) for d in dims.strip().rstrip(")").split(",") if d.strip()]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--shapes", default="/work/shared/reference/cogview3-state-dict-shapes.txt")
    args = ap.parse_args()
    os.makedirs(os.path.join(args.out, "sat", "1"), exist_ok=True)
    sh = shapes(args.shapes)
    names = sorted(sh)
    header, offset = {}, 0
    for n in names:
        size = 2 * int(numpy.prod(sh[n], dtype=numpy.int64))
        header[n] = {"dtype": "F16", "shape": sh[n], "data_offsets": [offset, offset + size]}
        offset += size
    h = json.dumps(header).encode()
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    st = os.path.join(args.out, "unet.safetensors")
    with open(st, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        left = offset
        while left:
            n = min(left, 64 << 20)
            f.write(os.urandom(n))
            left -= n
    data = numpy.memmap(st, dtype=numpy.uint8, mode="r", offset=8 + len(h))
    module = {}
    for n in names:
        b, e = header[n]["data_offsets"]
        module["model.diffusion_model." + n] = torch.from_numpy(
            numpy.array(data[b:e], copy=False).view(numpy.float16)).view(sh[n])
    with open(os.path.join(args.out, "sat", "latest"), "w") as f:
        f.write("1\n")
    torch.save({"module": module}, os.path.join(args.out, "sat", "1", "mp_rank_00_model_states.pt"))
    print(f"{len(names)} tensors, {offset} bytes of data")


if __name__ == "__main__":
    main()
