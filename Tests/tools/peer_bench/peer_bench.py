#!/usr/bin/env python3
"""Peer benchmark: CogFlow next to PyTorch and OpenVINO on the same networks and shapes (issue 13, item 1).

Not part of CI. Each engine runs in its own child process (so its peak RSS is its own), on the same number of
threads, with random weights; engines alternate round by round and every measurement waits (bounded) for an idle
machine and records the load average. GFLOP/s use CogFlow's own FLOP count for the pass (identical shapes), so the
rates of all engines are comparable. See README.md next to this file.

Usage: python3 peer_bench.py [--nets vae,unet] [--rounds 1] ...   (run setup_venv.sh first for OpenVINO)
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


# ---------------------------------------------------------------- machine facts


def lscpu():
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    facts = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        facts[key.strip()] = value.strip()
    flags = set(facts.get("Flags", "").split())
    return {
        "model_name": facts.get("Model name", "?"),
        "family": facts.get("CPU family", "?"),
        "model": facts.get("Model", "?"),
        "cpus": facts.get("CPU(s)", "?"),
        "avx512f": "avx512f" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
    }


def loadavg():
    return os.getloadavg()[0]


def wait_idle(threshold, max_wait):
    """Waits until the 1-minute load average is below `threshold` (at most `max_wait` s); returns the load."""
    deadline = time.time() + max_wait
    while loadavg() >= threshold and time.time() < deadline:
        time.sleep(5)
    return loadavg()


# ---------------------------------------------------------------- children (one engine, one network)


def unet_module(torch):
    from diffusers import UNet2DConditionModel

    # CogView3 base/relay UNet (cogview3-official.md §3.1) in diffusers' SDXL layout: context 4096, no pooled
    # text embedding, y = six 256-wide timestep embeddings (1536) through the text_time path.
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(320, 640, 1280), layers_per_block=2, transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20), cross_attention_dim=4096, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=1536,
        flip_sin_to_cos=True, freq_shift=0)

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unet = unet

        def forward(self, x, t, context, time_ids):
            text = x.new_zeros((x.shape[0], 0))
            return self.unet(x, t, encoder_hidden_states=context,
                             added_cond_kwargs={"text_embeds": text, "time_ids": time_ids}).sample

    return Wrapped().eval()


def unet_inputs(torch, args):
    g = torch.Generator().manual_seed(11)
    b, s = args.unet_batch, args.unet_latent
    return (torch.randn(b, 4, s, s, generator=g), torch.full((b,), 999, dtype=torch.long),
            torch.randn(b, args.t5_tokens, 4096, generator=g),
            torch.tensor([[512.0, 512.0, 0.0, 0.0, 512.0, 512.0]] * b))


def vae_module(torch):
    from diffusers import AutoencoderKL

    # The SDXL VAE (cogview3-official.md §4.1): ch 128, ch_mult [1, 2, 4, 4], 2 res blocks, GroupNorm eps 1e-6.
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2, norm_num_groups=32, sample_size=1024, scaling_factor=0.13025)

    class Decode(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vae = vae

        def forward(self, z):
            return self.vae.decode(z).sample

    return Decode().eval()


def vae_inputs(torch, args):
    g = torch.Generator().manual_seed(21)
    s = args.vae_image // 8
    return (torch.randn(1, 4, s, s, generator=g),)


def t5_module(torch, layers):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=layers, num_heads=64,
                      feed_forward_proj="gated-gelu", relative_attention_num_buckets=32)
    model = T5EncoderModel(config)

    class Encode(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, ids):
            return self.model(input_ids=ids).last_hidden_state

    return Encode().eval()


def t5_inputs(torch, args):
    return (torch.tensor([[(i * 7919 + 13) % 32000 for i in range(args.t5_tokens)]]),)


def run_child(args):
    """Builds one network for one engine, runs `warmup` untimed and `passes` timed passes, prints one JSON line."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    bf16 = args.precision == "bf16"
    t0 = time.time()
    if args.net == "unet":
        module, inputs = unet_module(torch), unet_inputs(torch, args)
    elif args.net == "vae":
        module, inputs = vae_module(torch), vae_inputs(torch, args)
    else:
        module, inputs = t5_module(torch, args.t5_layers), t5_inputs(torch, args)
    info = {"engine": args.engine, "net": args.net, "precision": args.precision}
    if args.engine == "torch":
        if bf16:
            module = module.to(torch.bfloat16)
            inputs = tuple(x.to(torch.bfloat16) if x.is_floating_point() else x for x in inputs)
        info["kernel"] = (
            f"torch {torch.__version__}, cpu capability {torch.backends.cpu.get_cpu_capability()}, "
            f"mkldnn {'on' if torch.backends.mkldnn.is_available() else 'off'}, "
            f"mkl {'on' if torch.backends.mkl.is_available() else 'off'}")
        config = torch.__config__.show()
        for line in config.splitlines():
            if "oneDNN" in line or "MKL-DNN" in line or "Math Kernel Library" in line:
                info["kernel"] += "; " + line.strip().lstrip("- ")

        def call():
            with torch.inference_mode():
                return module(*inputs)
    else:
        import openvino as ov

        core = ov.Core()
        with torch.inference_mode():
            model = ov.convert_model(module, example_input=inputs)
        del module
        compiled = core.compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": args.threads, "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
            "PERFORMANCE_HINT": "LATENCY"})
        del model
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        hint = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
        info["kernel"] = (f"openvino {ov.__version__}, device {core.get_property('CPU', 'FULL_DEVICE_NAME')}, "
                          f"inference precision {hint}, threads {compiled.get_property('INFERENCE_NUM_THREADS')}")
        arrays = [x.numpy() for x in inputs]
        request = compiled.create_infer_request()

        def call():
            return request.infer(arrays)
    info["build_seconds"] = time.time() - t0
    for _ in range(args.warmup):
        call()
    seconds = []
    for _ in range(args.passes):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    info["seconds"] = seconds
    print("PEER_RESULT " + json.dumps(info), flush=True)


# ---------------------------------------------------------------- parent


def spawn(cmd, env):
    """Runs `cmd`; returns (stdout, stderr, exit status)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return proc.stdout, proc.stderr, proc.returncode


def rss_wrap(cmd):
    """Prefixes `cmd` with a wrapper that prints the child's ru_maxrss (KiB) to stderr after it exits: this
    parent's RUSAGE_CHILDREN would hold the largest of all its children, not this one's."""
    code = ("import resource,subprocess,sys;r=subprocess.call(sys.argv[1:]);"
            "sys.stderr.write('PEER_MAXRSS_KIB %d\\n'%resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
            "sys.exit(r)")
    return [sys.executable, "-c", code] + cmd


def openblas_core(env):
    """The kernel family Debian's OpenBLAS picks under `env`, as CogFlow would use it (CogFlow re-executes
    with SkylakeX/Haswell when the library falls back to generic kernels and OPENBLAS_CORETYPE is unset)."""
    code = ("import ctypes;l=ctypes.CDLL('libopenblas.so.0');l.openblas_get_corename.restype=ctypes.c_char_p;"
            "print(l.openblas_get_corename().decode())")
    try:
        picked = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if env.get("OPENBLAS_CORETYPE"):
        return f"{picked} (OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']})"
    generic = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Barcelona", "Opteron"}
    if picked in generic:
        cpu = lscpu()
        forced = "SkylakeX" if cpu["avx512f"] else "Haswell"
        return f"{forced} (library picked {picked}; cogflow re-executes with OPENBLAS_CORETYPE={forced})"
    return picked


def cogflow_command(args, net):
    base = [args.cogflow, "bench"]
    if net == "unet":
        return base + ["unet", "--json", "--size", str(args.unet_latent), "--batch", str(args.unet_batch),
                       "--context-tokens", str(args.t5_tokens), "--passes", str(args.warmup + args.passes),
                       "--threads", str(args.threads)]
    if net == "vae":
        return base + ["vae", "--json", "--decode-only", "--size", str(args.vae_image),
                       "--passes", str(args.warmup + args.passes), "--threads", str(args.threads)]
    return base + ["t5", "--json", "--layers", str(args.t5_layers), "--tokens", str(args.t5_tokens),
                   "--passes", str(args.warmup + args.passes)]


def measure(args, net, engine, precision, env):
    if engine == "cogflow":
        cmd = cogflow_command(args, net)
    else:
        cmd = [args.python, os.path.abspath(__file__), "--child", "--engine", engine, "--net", net,
               "--precision", precision, "--threads", str(args.threads), "--warmup", str(args.warmup),
               "--passes", str(args.passes), "--unet-latent", str(args.unet_latent),
               "--unet-batch", str(args.unet_batch), "--vae-image", str(args.vae_image),
               "--t5-layers", str(args.t5_layers), "--t5-tokens", str(args.t5_tokens)]
    load_before = wait_idle(args.idle_load, args.max_wait)
    out, err, rc = spawn(rss_wrap(cmd), env)
    load_after = loadavg()
    row = {"net": net, "engine": engine, "precision": precision, "load_before": round(load_before, 2),
           "load_after": round(load_after, 2), "command": " ".join(cmd)}
    for line in err.splitlines():
        if line.startswith("PEER_MAXRSS_KIB"):
            row["peak_rss_bytes"] = int(line.split()[1]) * 1024
    if rc != 0:
        row["error"] = f"exit {rc}: " + (err.strip().splitlines() or ["(no stderr)"])[-1][:300]
        return row
    if engine == "cogflow":
        rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        passes = [r for r in rows if not str(r.get("name", "")).startswith("sgemm")]
        timed = passes[args.warmup:] or passes
        row["seconds"] = min(r["seconds"] for r in timed)
        row["flops"] = timed[0]["flops"]
        row["kernel"] = (f"OpenBLAS {openblas_core(env)}, sgemm "
                         f"{timed[0].get('sgemm_gflops', rows[0].get('gflops', 0)):.0f} GFLOP/s")
    else:
        results = [json.loads(line.split(" ", 1)[1]) for line in out.splitlines() if line.startswith("PEER_RESULT")]
        if not results:
            row["error"] = "child printed no result"
            return row
        row["seconds"] = min(results[0]["seconds"])
        row["kernel"] = results[0]["kernel"]
        row["build_seconds"] = round(results[0]["build_seconds"], 1)
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", default="vae,unet", help="comma list of vae, unet, t5 (default vae,unet)")
    p.add_argument("--engines", default="cogflow,torch,openvino")
    p.add_argument("--skip", default="openvino:unet,openvino:t5",
                   help="engine:net pairs to leave out (default: OpenVINO UNet/T5, whose conversion needs "
                        "≈ 22 GiB for the UNet); '' runs all")
    p.add_argument("--bf16", choices=["auto", "yes", "no"], default="auto",
                   help="add bf16 rows for torch/openvino (auto: only if the CPU has avx512_bf16 or AMX)")
    p.add_argument("--rounds", type=int, default=1, help="rounds; each round runs every engine once, alternating")
    p.add_argument("--warmup", type=int, default=1, help="untimed passes in each child")
    p.add_argument("--passes", type=int, default=1, help="timed passes in each child (best is reported)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--idle-load", type=float, default=0.5, help="wait until the 1-min load is below this")
    p.add_argument("--max-wait", type=float, default=120, help="seconds to wait for idle before measuring anyway")
    p.add_argument("--cogflow", default=os.environ.get("COGFLOW", os.path.join(REPO, ".build/release/cogflow")))
    p.add_argument("--python", default=os.environ.get("PEER_PYTHON", os.path.join(
        os.environ.get("PEER_VENV", "/work/venv-peer"), "bin", "python")))
    p.add_argument("--unet-latent", type=int, default=64)
    p.add_argument("--unet-batch", type=int, default=2)
    p.add_argument("--vae-image", type=int, default=512)
    p.add_argument("--t5-layers", type=int, default=24)
    p.add_argument("--t5-tokens", type=int, default=225)
    p.add_argument("--json-out", help="also write the JSON here")
    # child mode
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--engine", help=argparse.SUPPRESS)
    p.add_argument("--net", help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        run_child(args)
        return
    if not os.access(args.cogflow, os.X_OK):
        sys.exit(f"peer_bench: no cogflow binary at {args.cogflow}; build it (swift build -c release) or pass "
                 "--cogflow PATH")
    if not os.access(args.python, os.X_OK):
        sys.exit(f"peer_bench: no python at {args.python}; run setup_venv.sh or pass --python PATH")

    cpu = lscpu()
    has_bf16 = cpu["avx512_bf16"] or cpu["amx_bf16"]
    bf16 = args.bf16 == "yes" or (args.bf16 == "auto" and has_bf16)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), COGFLOW_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads))
    skip = {tuple(s.split(":")) for s in args.skip.split(",") if ":" in s}
    engines = [e for e in args.engines.split(",") if e]
    rows = []
    for net in [n for n in args.nets.split(",") if n]:
        plan = [(e, "fp32") for e in engines] + ([(e, "bf16") for e in engines if e != "cogflow"] if bf16 else [])
        plan = [(e, pr) for e, pr in plan if (e, net) not in skip]
        for rnd in range(args.rounds):
            for engine, precision in (plan if rnd % 2 == 0 else list(reversed(plan))):
                row = measure(args, net, engine, precision, env)
                row["round"] = rnd
                print(f"# {json.dumps(row)}", file=sys.stderr, flush=True)
                rows.append(row)
    # GFLOP/s from CogFlow's FLOP count for the same network and shapes; ratio = seconds / CogFlow seconds.
    for net in {r["net"] for r in rows}:
        ref = [r for r in rows if r["net"] == net and r["engine"] == "cogflow" and "seconds" in r]
        flops = ref[0]["flops"] if ref else None
        best = min(r["seconds"] for r in ref) if ref else None
        for r in rows:
            if r["net"] == net and "seconds" in r:
                r["gflops"] = flops / r["seconds"] / 1e9 if flops else None
                r["time_ratio_to_cogflow"] = r["seconds"] / best if best else None
    facts = {"cpu": cpu, "kernel": platform.release(), "threads": args.threads,
             "bf16_rows": bf16, "bf16_note": None if bf16 else
             "no bf16 rows: lscpu shows neither avx512_bf16 nor amx_bf16 on this CPU",
             "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "rows": rows}
    print(f"CPU: {cpu['model_name']} (family {cpu['family']}, model {cpu['model']}, {cpu['cpus']} CPUs); "
          f"kernel {platform.release()}; {args.threads} threads per engine")
    print("| net | engine | precision | seconds | GFLOP/s | time / CogFlow | peak RSS GiB | load 1-min before→after | "
          "kernel / precision |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['net']} | {r['engine']} | {r['precision']} | failed: {r['error']} | | | | | |")
            continue
        label = "" if r["load_before"] < args.idle_load else " (loaded)"
        rate = f"{r['gflops']:.0f}" if r.get("gflops") else "–"
        ratio = f"{r['time_ratio_to_cogflow']:.2f}×" if r.get("time_ratio_to_cogflow") else "–"
        rss = f"{r['peak_rss_bytes'] / 2**30:.2f}" if r.get("peak_rss_bytes") else "–"
        print(f"| {r['net']} | {r['engine']} | {r['precision']} | {r['seconds']:.2f} | {rate} | {ratio} | {rss} | "
              f"{r['load_before']}→{r['load_after']}{label} | {r['kernel']} |")
    if facts["bf16_note"]:
        print(f"\n{facts['bf16_note']}")
    text = json.dumps(facts, indent=1)
    print("\n```json\n" + text + "\n```")
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
