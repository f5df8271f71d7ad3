#!/usr/bin/env bash
# Issue 18's GPU check, one prepared run of at most five minutes on a machine with JAX and
# PyTorch but no TensorFlow and no package registry: `bench/backends.py` on JAX and PyTorch
# (permuted Fashion-MNIST fine-tuning and EWC, class-incremental split Fashion-MNIST replay; each
# run twice in one process), its JSON rows written to $OUT (or /tmp).
#
# Prepare here with `make gpu-bundle` (Keras's wheel and the two it needs that such a machine
# lacks, into .whl/; Fashion-MNIST into .data/), then run there from the repository's root with
# .whl and .data carried:  bash bench/gpu.sh   (GPU_BENCH_ARGS="--limit 2000 --runs 1": a smoke run)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp}"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD/src"
else
  export PYTHONPATH="$PWD/src"
fi
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
python3 -c "import jax, torch; print('jax', jax.__version__, jax.devices()); \
print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no cuda')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
timeout 285 python3 bench/backends.py --backends jax,torch --data-dir .data/fashion-mnist \
  --json "$out/backends_gpu.json" ${GPU_BENCH_ARGS:-} 2>&1 | tee "$out/backends_gpu.log"
