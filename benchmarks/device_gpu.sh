#!/usr/bin/env bash
# One-shot GPU benchmark for a lent H200/H100 (the device tool): under 9 minutes, model build included.
#
#   bash benchmarks/device_gpu.sh             # on the lent machine: carried wheels, then benchmarks.gpu
#   bash benchmarks/device_gpu.sh --dry-run   # here: checks the wheels and the command line, runs nothing heavy
#   bash benchmarks/device_gpu.sh --tiny      # here: the same steps on the CPU with the tiny model (~1 min)
#
# It installs the wheels carried in .whl/ (diffusers, importlib_metadata, torchao: the machine's image
# has torch and transformers but not these) into /tmp/site, records nvidia-smi, and runs
# `python -m benchmarks.gpu` with a time budget (BUDGET seconds, default 450), writing its JSON and its
# log under $OUT (the device tool's output folder; /tmp/seedgrid-device elsewhere). benchmarks.gpu
# rewrites the JSON after every phase, so a run cut short still leaves what it measured.
# Compile mode "default" (COMPILE_MODE to change it): max-autotune's autotuning of two compiled
# variants would not fit one lease. See benchmarks/README.md, "On a lent GPU machine".
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
mode=full
case "${1:-}" in
  "") ;;
  --dry-run) mode=dry ;;
  --tiny) mode=tiny ;;
  *) echo "usage: bash benchmarks/device_gpu.sh [--dry-run | --tiny]" >&2; exit 2 ;;
esac
out="${OUT:-/tmp/seedgrid-device}"
budget="${BUDGET:-450}"
options="{\"compile_mode\": \"${COMPILE_MODE:-default}\"}"
mkdir -p "$out"
python=python3
if [ "$mode" != full ] && [ -x .venv/bin/python ]; then python=.venv/bin/python; fi

# 1. the carried wheels (one version of each)
wheels=(.whl/*.whl)
if [ -e "${wheels[0]}" ]; then
  echo "wheels: ${wheels[*]}"
  for needed in diffusers importlib_metadata; do
    ls .whl/"$needed"-*.whl >/dev/null 2>&1 || echo "warning: no $needed wheel in .whl/ (see benchmarks/README.md)"
  done
  if [ "$mode" = full ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "${wheels[@]}" || exit 3
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
elif [ "$mode" = full ]; then
  echo "warning: no .whl/ folder: diffusers must already be installed here"
fi

# 2. the machine
if [ "$mode" = full ]; then
  nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || echo "warning: nvidia-smi failed"
  export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-cache
fi
"$python" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"

# 3. the benchmark
# fp8 before compiled: each compiles for minutes, and the budget skips the last one first
variants="${VARIANTS:-plain,eager,fp8,compiled}"
command=("$python" -m benchmarks.gpu --out "$out/gpu.json" --budget "$budget" --variants "$variants"
  --seedgrid-options "$options")
case "$mode" in
  dry)
    echo "would run: PYTHONUNBUFFERED=1 timeout $((budget + 60)) ${command[*]}"
    "${command[@]}" --help >/dev/null || exit 4
    echo "dry run ok: the command line parses; nothing was run"
    ;;
  tiny)
    PYTHONUNBUFFERED=1 timeout 300 "${command[@]}" --tiny 2>&1 | tee "$out/gpu.log"
    exit "${PIPESTATUS[0]}"
    ;;
  full)
    PYTHONUNBUFFERED=1 timeout $((budget + 60)) "${command[@]}" 2>&1 | tee "$out/gpu.log"
    exit "${PIPESTATUS[0]}"
    ;;
esac
