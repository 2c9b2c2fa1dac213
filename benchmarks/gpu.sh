#!/usr/bin/env bash
# The prepared GPU run: every benchmark at full size plus short image-recipe trainings
# (digits always; MNIST and CIFAR-10 where their files are given), all JSON under one
# folder, in at most 8 minutes of wall time.
#
# Target machine: Python 3.12, jax 0.11 with CUDA, flax, optax, orbax-checkpoint, chex,
# scikit-learn, matplotlib, tqdm, pyyaml and jaxtyping preinstalled; no network. jebm
# runs from this source tree (PYTHONPATH=src); the only things installed are the wheels
# in .whl/ (tyro, blackjax and their pure-Python dependencies), into .whl/site, never
# into the system environment. See benchmarks/README.md for preparing .whl/.
#
# Usage (from anywhere):
#   bash benchmarks/gpu.sh [OUT_DIR]         # default benchmarks/results/gpu-<UTC time>
#   JEBM_GPU_SMOKE=1 bash benchmarks/gpu.sh   # tiny sizes, any backend (CPU smoke test)
#   JEBM_GPU_BUDGET_S=480                     # the wall-time budget (default 480 s)
#   JEBM_MNIST_PATH=/data/mnist               # MNIST's four idx-ubyte files: trains
#                                             # configs/mnist_{pcd,jem}.yaml (else skipped)
#   JEBM_CIFAR10_PATH=/data/cifar-10-batches-bin  # CIFAR-10's binary batches: trains
#                                             # configs/cifar10_{pcd,jem}.yaml (else skipped)
# In smoke mode the MNIST and CIFAR-10 phases always run, on tiny files written in the data
# sets' byte formats under OUT_DIR/fake-data, with the models shrunk by overrides.
#
# Every phase runs under `timeout` with what is left of the budget; a phase that runs out
# of time is recorded as such in OUT_DIR/phases.tsv and the script goes on to the next.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
SMOKE=${JEBM_GPU_SMOKE:-0}
BUDGET=${JEBM_GPU_BUDGET_S:-480}
PY=${PYTHON:-python3}
OUT=${1:-benchmarks/results/gpu-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SECONDS=0

export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export MPLBACKEND=Agg

# --- wheels from .whl/ only (no index, no dependencies resolved over the network)
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PY" -m pip install --quiet --no-index --no-deps --target .whl/site .whl/*.whl \
    || { echo "gpu.sh: installing .whl/*.whl failed" >&2; exit 1; }
  export PYTHONPATH="$PYTHONPATH:$REPO/.whl/site"
fi

# --- what we run on
{
  echo "date_utc: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "smoke: $SMOKE, budget_s: $BUDGET"
  "$PY" - <<'EOF'
import jax, jaxlib, platform
print("python:", platform.python_version())
print("jax:", jax.__version__, "jaxlib:", jaxlib.__version__)
print("backend:", jax.default_backend(), "devices:", jax.devices())
for name in ("jebm", "flax", "optax", "orbax.checkpoint", "tyro", "blackjax"):
    try:
        mod = __import__(name, fromlist=["_"])
        print(f"{name}: {getattr(mod, '__version__', '?')} ({'ok'})")
    except Exception as err:  # noqa: BLE001
        print(f"{name}: MISSING ({type(err).__name__}: {err})")
EOF
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv,noheader
} 2>&1 | tee "$OUT/device.txt"

printf 'phase\trc\twall_s\n' > "$OUT/phases.tsv"
phase() {  # phase NAME SHARE_OF_REMAINING_PERCENT CMD...
  local name=$1 share=$2; shift 2
  local left=$((BUDGET - SECONDS))
  if ((left < 10)); then
    printf '%s\tskipped (budget spent)\t0\n' "$name" >> "$OUT/phases.tsv"
    echo "gpu.sh: skipping $name, budget spent" >&2
    return
  fi
  local limit=$((left * share / 100))
  ((limit < 10)) && limit=10
  echo "=== $name (limit ${limit}s, ${SECONDS}s elapsed)"
  local t0=$SECONDS
  timeout --signal=TERM --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  ((rc == 124)) && rc="124 (timed out)"
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$OUT/phases.tsv"
}

RUN_ALL=("$PY" benchmarks/run_all.py --results-dir "$OUT")
if [[ $SMOKE == 1 ]]; then
  # Tiny sizes: check that every phase runs end to end and writes its JSON.
  phase benchmarks 70 "${RUN_ALL[@]}" --quick --only train_step --only samplers \
    --args train_step "--objectives pcd dsm --updates 3 --repeats 1" \
    --args samplers "--num-chains 16 --num-steps 3 --repeats 1 --targets 8gaussians"
  IMAGE_STEPS=4
  IMAGE_EVAL=("eval.ais_chains=8" "eval.ais_bridges=4" "eval.num_samples=16"
              "eval.sample_steps=2" "train.chunk_size=2" "train.checkpoint_every=4"
              "train.eval_every=4" "train.log_every=2")
else
  # The fast, device-bound scripts first, then the long trainings with what is left.
  phase benchmarks 75 "${RUN_ALL[@]}" --full --only samplers --only chain_scaling \
    --only train_step --only default_job --only peers --only score_matching --only logz --only sharding
  IMAGE_STEPS=200
  IMAGE_EVAL=("train.chunk_size=50" "train.checkpoint_every=200" "train.eval_every=100")
fi

# --- image recipes: short trainings of each digits config through the CLI
for config in configs/digits_*.yaml; do
  name=$(basename "$config" .yaml)
  phase "$name" 50 "$PY" -m jebm.cli train --config "$config" --workdir "$OUT/runs/$name" \
    --no-progress "train.num_steps=$IMAGE_STEPS" "${IMAGE_EVAL[@]}"
  if [[ -f $OUT/runs/$name/summary.json ]]; then
    cp "$OUT/runs/$name/summary.json" "$OUT/$name-summary.json"
  fi
done

# --- MNIST and CIFAR-10 recipes: short trainings through the CLI where their files are given
MNIST_PATH=${JEBM_MNIST_PATH:-}
CIFAR10_PATH=${JEBM_CIFAR10_PATH:-}
# These are short runs of 20 000-update recipes: the JEM configs' 1000-update warm-up
# would keep their learning rate below a fifth of its value throughout, so the warm-up is
# a tenth of the updates run here.
BIG_EXTRA=("optimizer.warmup_steps=$((IMAGE_STEPS / 10))")
if [[ $SMOKE == 1 ]]; then
  # Small files in the real byte formats (idx-ubyte; CIFAR-10's binary records), random
  # pixels; more training images than pixels, so the fitted Gaussians' covariances are
  # full rank.
  MNIST_PATH=$OUT/fake-data/mnist
  CIFAR10_PATH=$OUT/fake-data/cifar-10-batches-bin
  "$PY" - "$MNIST_PATH" "$CIFAR10_PATH" <<'EOF'
import struct, sys
from pathlib import Path
import numpy as np

rng = np.random.default_rng(0)
mnist, cifar = Path(sys.argv[1]), Path(sys.argv[2])
mnist.mkdir(parents=True, exist_ok=True)
cifar.mkdir(parents=True, exist_ok=True)

def idx(array):  # big-endian header: 0, 0, type 0x08 (ubyte), ndim, then uint32 sizes
    head = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return head + array.astype(np.uint8).tobytes()

for split, n in (("train", 1000), ("t10k", 100)):
    (mnist / f"{split}-images-idx3-ubyte").write_bytes(idx(rng.integers(0, 256, (n, 28, 28))))
    (mnist / f"{split}-labels-idx1-ubyte").write_bytes(idx(rng.integers(0, 10, n)))
for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    n = 100 if name == "test_batch.bin" else 640  # records: a label byte, then R, G, B planes
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    (cifar / name).write_bytes(b"".join(bytes([y]) + x.tobytes() for x, y in zip(images, labels)))
EOF
  BIG_EXTRA=("model.features=[4]" "model.hidden=[8]" "data.batch_size=8"
             "objective.buffer_size=16" "objective.num_chains=8" "sampler.num_steps=2"
             "optimizer.warmup_steps=0")
fi
for config in configs/mnist_pcd.yaml configs/mnist_jem.yaml configs/cifar10_pcd.yaml \
              configs/cifar10_jem.yaml; do
  name=$(basename "$config" .yaml)
  if [[ $name == mnist_* ]]; then path=$MNIST_PATH var=JEBM_MNIST_PATH
  else path=$CIFAR10_PATH var=JEBM_CIFAR10_PATH; fi
  if [[ -z $path ]]; then
    printf '%s\tskipped (%s unset)\t0\n' "$name" "$var" >> "$OUT/phases.tsv"
    echo "gpu.sh: skipping $name, $var is not set" >&2
    continue
  fi
  phase "$name" 50 "$PY" -m jebm.cli train --config "$config" --workdir "$OUT/runs/$name" \
    --no-progress "data.path=$path" "train.num_steps=$IMAGE_STEPS" "${IMAGE_EVAL[@]}" \
    "${BIG_EXTRA[@]}"
  if [[ -f $OUT/runs/$name/summary.json ]]; then
    cp "$OUT/runs/$name/summary.json" "$OUT/$name-summary.json"
  fi
done

if [[ $SMOKE != 1 ]]; then
  phase long_trainings 95 "${RUN_ALL[@]}" --full --only objectives --only digits
fi

echo "=== done in ${SECONDS}s; JSON under $OUT"
column -t -s $'\t' "$OUT/phases.tsv" 2> /dev/null || cat "$OUT/phases.tsv"
ls "$OUT"/*.json
