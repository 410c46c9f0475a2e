#!/usr/bin/env bash
# The prepared GPU check: `d2i bench` on the full-size SD2-depth architecture (random weights),
# the plain diffusers pipeline against the engine's presets, in one run on one GPU.
#
#   benchmarks/gpu_check.sh            # from the repository root or anywhere
#
# Wheels found in $WHEELS (default: wheels/ in the repository) are installed first, offline, for
# machines without the dependencies. The table, the JSON and the log go to $OUT when it is set,
# else to bench-out/. The run is cut at $BENCH_TIMEOUT seconds (default 480, the 8-minute budget).
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir="${OUT:-$PWD/bench-out}"
wheels="${WHEELS:-$PWD/wheels}"
mkdir -p "$out_dir"

if compgen -G "$wheels/*.whl" >/dev/null; then
    python -m pip install --quiet --no-index --find-links "$wheels" "$wheels"/*.whl
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export D2I_DATA_DIR="${D2I_DATA_DIR:-/tmp/d2i-bench-data}"  # holds the compile cache: a second run measures it warm

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi: not available"
  python -c "import torch, diffusers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), '| diffusers', diffusers.__version__)"
} | tee "$out_dir/environment.txt"

status=0
timeout --kill-after=15 "${BENCH_TIMEOUT:-480}" \
    python -m d2i_desktop.cli bench --json "$out_dir/bench.json" "$@" \
    2> >(tee "$out_dir/bench.log" >&2) | tee "$out_dir/bench.txt" || status=$?
[ "$status" -eq 124 ] && echo "bench: stopped after ${BENCH_TIMEOUT:-480} s; partial log in $out_dir/bench.log" >&2
exit "$status"
