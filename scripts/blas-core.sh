#!/usr/bin/env bash
# Prints the OpenBLAS kernel family to force on this CPU, or nothing. Debian's OpenBLAS 0.3.21 falls back
# to generic SSE3 kernels ("Prescott") on CPUs newer than itself; see Sources/Tensor/BLASCore.swift.
# Used by the Makefile for the test process (the cogflow binary re-executes itself with the same choice).
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
has() { case " $flags " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
detected=$(python3 - 2>/dev/null <<'PY' || true
import ctypes, ctypes.util
try:
    lib = ctypes.CDLL("libopenblas.so.0")
    lib.openblas_get_corename.restype = ctypes.c_char_p
    print(lib.openblas_get_corename().decode())
except Exception:
    pass
PY
)
case "$detected" in
  Prescott|Core2|Penryn|Dunnington|Nehalem|Atom|Barcelona|Opteron|Opteron_SSE3|"") ;;
  *) exit 0 ;;
esac
if has avx512f && has avx512bw && has avx512vl && has avx512dq; then echo SkylakeX
elif has avx2 && has fma; then echo Haswell
fi
