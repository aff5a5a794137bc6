#!/usr/bin/env bash
# Issue 10 measurements: generates the five hostile workflows in a temporary folder and runs
# `cogflow validate` on each under /usr/bin/time (wall seconds, peak RSS). Usage:
#   bash Tests/tools/hardening-measure.sh [path/to/cogflow]   (default .build/release/cogflow)
set -euo pipefail
bin=$(readlink -f "${1:-.build/release/cogflow}")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
python3 - <<'PY'
n = 100_000
open("flat.yaml", "w").write("cogflow: 1\nparams:\n  big: [" + ", ".join(map(str, range(n))) + "]\nnodes: {}\n")
m = 50_000
chain = ["cogflow: 1", "nodes:"]
chain += [f"  n{i}: {{type: toy.add, in: {{a: n{i - 1}.out}}}}" for i in range(m - 1, 0, -1)]
chain.append("  n0: {type: toy.add}")
open("chain.yaml", "w").write("\n".join(chain) + "\n")
cycle = ["cogflow: 1", "nodes:"] + [f"  c{i}: {{type: toy.add, in: {{a: c{(i + 1) % m}.out}}}}" for i in range(m)]
open("cycle.yaml", "w").write("\n".join(cycle) + "\n")
open("name.yaml", "w").write("cogflow: 1\nnodes:\n  a: {type: " + "z" * 10_000_000 + "}\n")
laughs = "cogflow: 1\nparams:\n  a0: &a0 [" + ", ".join(["lol"] * 10) + "]\n"
for i in range(1, 10):
    laughs += f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n"
open("laughs.yaml", "w").write(laughs + "nodes: {}\n")
PY
for case in ${CASES:-flat chain cycle name laughs}; do
  set +e
  COGFLOW_TOY_NODES=1 /usr/bin/time -f "%e s, %M KiB peak" timeout 150 "$bin" validate "$case.yaml" >out.txt 2>err.txt
  status=$?
  set -e
  printf '%-7s exit %s, %s; %s\n' "$case" "$status" "$(tail -1 err.txt)" "$(head -c 100 err.txt | head -1)"
done
