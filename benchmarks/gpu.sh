#!/usr/bin/env bash
# The prepared GPU run: every benchmark at full size plus short image-recipe trainings,
# all JSON under one folder, in at most 8 minutes of wall time.
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

if [[ $SMOKE != 1 ]]; then
  phase long_trainings 95 "${RUN_ALL[@]}" --full --only objectives --only digits
fi

echo "=== done in ${SECONDS}s; JSON under $OUT"
column -t -s $'\t' "$OUT/phases.tsv" 2> /dev/null || cat "$OUT/phases.tsv"
ls "$OUT"/*.json
