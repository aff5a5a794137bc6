#!/usr/bin/env python3
"""Validates Kubernetes manifests offline against the Kubernetes OpenAPI schema (no cluster needed).

Used by Tests/CLITests/K8sTests.swift on the output of `cogflow submit k8s`. Runs the pinned
kubernetes-validate (Tests/tools/k8s_requirements.txt) in strict mode, so unknown fields are errors too.

    python3 Tests/tools/k8s_validate.py FILE.yaml...        exit 0: every resource valid; 1: invalid
    exit 3: kubernetes-validate is missing or not the pinned version (the test skips, saying how to install it)
"""
import subprocess
import sys

PINNED = "1.37.0"
# The schema version the manifests target: Indexed Jobs with backoffLimitPerIndex are GA since 1.33.
KUBERNETES = "1.33.0"


def main() -> int:
    try:
        from importlib.metadata import version, PackageNotFoundError
        try:
            found = version("kubernetes-validate")
        except PackageNotFoundError:
            found = None
    except ImportError:
        found = None
    if found != PINNED:
        print(f"kubernetes-validate {PINNED} is needed (found: {found}); "
              "pip install -r Tests/tools/k8s_requirements.txt", file=sys.stderr)
        return 3
    if len(sys.argv) < 2:
        print("usage: k8s_validate.py FILE.yaml...", file=sys.stderr)
        return 2
    result = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "--no-warn", "-k", KUBERNETES, *sys.argv[1:]],
        capture_output=True, text=True)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return 0 if result.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
