#!/usr/bin/env bash
# The prepared GPU check: `d2i bench` on the full-size SD2-depth architecture (random weights),
# the plain diffusers pipeline against the engine's presets, in one run on one GPU.
#
# On the device machine, from the repository root (first: mkdir -p .whl && cp ../shared/gpu-wheels/*.whl .whl/):
#
#   run(command="benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
#
# That machine has torch, transformers, peft, accelerate, safetensors, scipy and huggingface_hub,
# but not the packages in NEEDED below: their wheels are taken from $WHEELS (default .whl/, ignored
# by git) and installed offline into $SITE; a needed one that is neither importable nor there stops
# the check at once, naming it. `--install-only` stops after that step.
#
# The table, the JSON and the log go to $OUT when it is set, else to bench-out/. The benchmark is
# cut at $BENCH_TIMEOUT seconds (default 480); the table is then printed from the figures written so far.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
wheels="${WHEELS:-$PWD/.whl}"
site="${SITE:-/tmp/d2i-site}"
out_dir="${OUT:-$PWD/bench-out}"
NEEDED=(diffusers platformdirs send2trash importlib_metadata zipp)  # import names; wheels are named alike

missing=()
for package in "${NEEDED[@]}"; do
    if ! compgen -G "$wheels/${package}-*.whl" >/dev/null && ! "$python" -c "import $package" 2>/dev/null; then
        missing+=("$package")
    fi
done
if ((${#missing[@]})); then
    echo "gpu_check: missing wheels for: ${missing[*]} (not installed, not in $wheels)." >&2
    echo "gpu_check: copy them there first: mkdir -p .whl && cp ../shared/gpu-wheels/*.whl .whl/" >&2
    exit 3
fi
if compgen -G "$wheels/*.whl" >/dev/null; then
    "$python" -m pip install --quiet --no-index --no-deps --target "$site" "$wheels"/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
"$python" -c "import diffusers, platformdirs, send2trash" || { echo "gpu_check: the installed packages do not import." >&2; exit 3; }
[ "${1:-}" = "--install-only" ] && exit 0

mkdir -p "$out_dir"
export D2I_DATA_DIR="${D2I_DATA_DIR:-/tmp/d2i-bench-data}"  # holds the compile cache: a second run measures it warm
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi: not available"
  "$python" -c "import torch, diffusers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), '| diffusers', diffusers.__version__)"
} | tee "$out_dir/environment.txt"

status=0
timeout --kill-after=15 "${BENCH_TIMEOUT:-480}" \
    "$python" -m d2i_desktop.cli bench --json "$out_dir/bench.json" "$@" \
    2> >(tee "$out_dir/bench.log" >&2) | tee "$out_dir/bench.txt" || status=$?
if [ "$status" -ne 0 ]; then
    echo "bench: stopped (exit $status); the figures measured so far:" | tee -a "$out_dir/bench.txt"
    if [ -s "$out_dir/bench.json" ]; then
        "$python" -m d2i_desktop.bench "$out_dir/bench.json" | tee -a "$out_dir/bench.txt"
    else
        echo "(none yet)" | tee -a "$out_dir/bench.txt"
    fi
fi
exit "$status"
