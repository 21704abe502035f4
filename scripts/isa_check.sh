#!/usr/bin/env bash
# Run the end-to-end training test under each of torch's CPU code paths on this machine:
# the test must pass on any CPU, and AVX-512, AVX2 and plain kernels train differently.
#   scripts/isa_check.sh            # all paths this CPU has
#   scripts/isa_check.sh avx2       # one
# torch's ATEN_CPU_CAPABILITY picks its own kernels; oneDNN's and MKL's switches cap theirs.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
paths=("$@")
if [ ${#paths[@]} -eq 0 ]; then
    paths=(default avx2)
    grep -qw avx512f /proc/cpuinfo && paths+=(avx512)
fi
status=0
for p in "${paths[@]}"; do
    case $p in
        avx512) env=(ATEN_CPU_CAPABILITY=avx512 ONEDNN_MAX_CPU_ISA=AVX512_CORE_AMX MKL_ENABLE_INSTRUCTIONS=AVX512) ;;
        avx2) env=(ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2) ;;
        default) env=(ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2) ;;
        *) echo "unknown code path $p (avx512, avx2, default)"; exit 2 ;;
    esac
    echo "== $p: ${env[*]}"
    env "${env[@]}" "$PY" -c "import torch; print('torch CPU capability:', torch.backends.cpu.get_cpu_capability())"
    log=$(mktemp)
    env "${env[@]}" "$PY" -m pytest -q -s -p no:cacheprovider tests/test_end_to_end.py >"$log" 2>&1 || status=1
    grep -E "pointing|passed|failed" "$log"
    rm -f "$log"
done
exit $status
