#!/usr/bin/env bash
# One prepared command for a GPU session (issue 13): validate the fused Pallas
# scan on the GPU, benchmark it and Mamba-2's SSD, measure training throughput and
# train the reference, Mamba-2 and large models with the fastest correct scan method.
#
#   scripts/gpu_check.sh            # on an H100/H200 machine, from a fresh checkout: < 14 minutes
#   scripts/gpu_check.sh --dry-run  # the same stages on a CPU: tiny shapes, interpret-mode
#                                   # kernels, configs/tiny.py and configs/tiny_mamba2.py;
#                                   # < 4 minutes (tests/test_gpu_check.py)
#
# Before the GPU session (on a machine with network), fill the two ignored folders
# that travel with the checkout (README "GPU session"):
#   .whl/    wheels of the pure-Python dependencies the GPU box lacks:
#            pip download --no-deps --only-binary=:all: --platform=any --implementation=py \
#              --python-version=3.10 -d .whl -r scripts/gpu_wheels.txt
#   .carry/  the prepared token cache (~39 MB), no raw data:
#            mkdir -p .carry/data_cache/<sentiment140-key> &&
#            cp -r data_cache/<sentiment140-key>/spm-bpe32000-* .carry/data_cache/<sentiment140-key>/
#            and for the LRA stage the token caches of ListOps and Image (python -m train.lra --quick
#            is not enough: the full-length ones, README "Long Range Arena"):
#            for t in listops image; do d=$(ls -d data_cache/lra-$t-* | head -1) &&
#              mkdir -p .carry/$d && cp $d/tokens_L* .carry/$d/; done
#
# Stages, each under its own time limit (seconds; `timeout`), so one slow stage
# cannot eat the others (on a GPU the limits add up to 795 s, the LRA stage last; a
# training run cut by its limit resumes from its last checkpoint when the script is
# run again):
#   install           pip install --no-index --no-deps from .whl/ the packages of
#                     scripts/gpu_wheels.txt not installed yet, then --no-deps -e . (no network)
#   imports           every module the later stages need
#   gpu_tests         pytest tests/test_pallas_scan.py -k Gpu (compiled kernels vs the associative scan)
#   scan_benchmark    python -m benchmarks.scan at tweet, tweet_big, long4k, long32k
#                     (float32 and bfloat16, fwd and fwd_bwd, pallas / associative / sequential,
#                     and Mamba-2's SSD: ssd:associative / ssd:sequential, heads of 64, chunks of 64)
#   train_throughput  python -m benchmarks.train_throughput --configs=mamba,mamba2 (fixed vs bucketed)
#   train_sent140     configs/sent140.py with the fastest correct method at "tweet float32 fwd_bwd":
#                     the full run (3 epochs, 9,189 steps) unless SENT140_STEPS caps it
#   train_mamba2      configs/sent140_mamba2.py with the fastest SSD recurrence at "tweet float32
#                     fwd_bwd" (benchmarks.fastest_method --family=ssd), SENT140_STEPS as above
#   train_large       configs/sent140_large.py with the fastest at "tweet bfloat16 fwd_bwd", under a
#                     step budget: LARGE_STEPS (default 2,000 of its 4 epochs = 12,252 steps; the
#                     cosine schedule follows the budget, so it is a complete, shorter run)
#   lra               the Long Range Arena study's models (configs/lra.py, ~0.6M parameters each) on
#                     ListOps (2,000 tokens) and Image (1,024 pixels) at full length, LRA_STEPS steps each
#                     (default 100) with python -m train.lra, from the prepared token caches carried in
#                     .carry/data_cache/lra-<task>-*/ (a task without one is left out and named); records
#                     in results/lra_gpu/ (examples/s per model). The dry run: ListOps, --quick, Mamba-2
#                     and the Transformer + RoPE only.
# "Correct" = the GPU tests passed; otherwise pallas is excluded from the choice.
#
# Results: results/ (scan_<gpu>.json/.md, train_throughput_<gpu>.json/.md) and
# results/gpu_check/ (stage logs, the training runs' eval_report.json and metrics,
# summary.md); all of results/ is copied to $OUT/results when $OUT is set. A short
# summary table is printed last. Exit code: 0 when every stage passed, 1 otherwise,
# 2 for a bad command line.

set -uo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
case "${1:-}" in
  "") ;;
  --dry-run) DRY_RUN=1 ;;
  *) echo "usage: scripts/gpu_check.sh [--dry-run]" >&2; exit 2 ;;
esac
if [[ $# -gt 1 ]]; then echo "usage: scripts/gpu_check.sh [--dry-run]" >&2; exit 2; fi

PYTHON=${PYTHON:-$(command -v python3 || command -v python)}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [[ $DRY_RUN == 1 ]]; then
  # Everything under one scratch folder: the checkout's results/ stay untouched.
  BASE=${GPU_CHECK_DRY_RUN_DIR:-workdirs/gpu_check_dry_run}
  RESULTS="$BASE/results"
  WORKDIRS="$BASE/workdirs"
  TINY_SHAPE=1x5x4x2
  # Every default method, SSD included: d = 4 in 2 heads of 2, l = 5 in chunks of 2 (a padded last one).
  SCAN_ARGS=(--shapes=$TINY_SHAPE --dtypes=float32 --modes=fwd,fwd_bwd --repeats=2
             --ssd_head_dim=2 --ssd_chunk_size=2
             --copy_bytes=1048576 --pallas_interpret --out="$RESULTS/scan_dry_run.json")
  THROUGHPUT_ARGS=(--quick --configs=mamba,mamba2 --output_dir="$RESULTS" --device_tag=dry_run)
  CASE_FP32="$TINY_SHAPE float32 fwd_bwd"
  CASE_BF16="$TINY_SHAPE float32 fwd_bwd"
  SENT140_CONFIG=configs/tiny.py
  MAMBA2_CONFIG=configs/tiny_mamba2.py
  LARGE_CONFIG=configs/tiny.py
  SENT140_STEPS=${SENT140_STEPS:-4}
  LARGE_STEPS=${LARGE_STEPS:-4}
  # Generous: the dry run checks the script, not the time (a shared CPU may be slow).
  LIMITS=(install=300 imports=300 gpu_tests=300 scan_benchmark=600 train_throughput=600
          train_sent140=300 train_mamba2=300 train_large=300 lra=600)
  LRA_TASKS=(listops)
  LRA_ARGS=(--quick --model=mamba2,transformer_rope "--set=prepared_dir=$BASE/lra_data_cache")
else
  RESULTS=results
  WORKDIRS=workdirs/gpu_check
  SCAN_ARGS=(--shapes=tweet,tweet_big,long4k,long32k --dtypes=float32,bfloat16
             --modes=fwd,fwd_bwd --methods=pallas,associative,sequential,ssd:associative,ssd:sequential
             --ssd_head_dim=64 --ssd_chunk_size=64 --repeats=5 --max_seconds_per_case=2)
  # The two Mambas only, one round, to fit the time budget (all models: python -m
  # benchmarks.train_throughput).
  THROUGHPUT_ARGS=(--configs=mamba,mamba2 --rounds=1 --steps=10 --steps_per_bound=1)
  CASE_FP32="tweet float32 fwd_bwd"
  CASE_BF16="tweet bfloat16 fwd_bwd"
  SENT140_CONFIG=configs/sent140.py
  MAMBA2_CONFIG=configs/sent140_mamba2.py
  LARGE_CONFIG=configs/sent140_large.py
  SENT140_STEPS=${SENT140_STEPS:--1}
  LARGE_STEPS=${LARGE_STEPS:-2000}
  # 795 s in all: with the machine's start-up, close to the 15 minutes a GPU is lent for; the LRA
  # stage runs last, so a cut leaves every other stage's result.
  LIMITS=(install=20 imports=20 gpu_tests=75 scan_benchmark=180 train_throughput=75
          train_sent140=100 train_mamba2=90 train_large=85 lra=150)
  LRA_STEPS=${LRA_STEPS:-100}
  LRA_TASKS=(listops image)
  LRA_ARGS=(--model=all "--set=num_train_steps=$LRA_STEPS" "--set=eval_every_steps=$LRA_STEPS"
            "--set=checkpoint_every_steps=$LRA_STEPS")
  # The prepared data: the token cache carried in .carry/, no raw files, no download.
  export MAMBA_JAX_DATA_CACHE="$PWD/.carry/data_cache"
  export SENT140_DATA_DIR="$PWD/.carry/no_raw_data"
fi
RUN_DIR="$RESULTS/gpu_check"
LOGS="$RUN_DIR/logs"
mkdir -p "$LOGS" "$WORKDIRS"
STAGES="$RUN_DIR/stages.tsv"
printf "stage\trc\tseconds\tlimit_s\tlog\tnote\n" > "$STAGES"

limit_of() {
  local entry
  for entry in "${LIMITS[@]}"; do
    [[ ${entry%%=*} == "$1" ]] && { echo "${entry#*=}"; return; }
  done
  echo "no time limit for stage $1" >&2; exit 1
}

# run_stage NAME NOTE CMD...: runs CMD under the stage's time limit, logs to $LOGS/NAME.log.
run_stage() {
  local name=$1 note=$2; shift 2
  local limit log start rc
  limit=$(limit_of "$name")
  log="$LOGS/$name.log"
  local command="$*"
  echo "== $name (limit ${limit}s): ${command:0:160}"
  start=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
  rc=$?
  tail -n 3 "$log" | sed 's/^/   /'
  printf "%s\t%s\t%s\t%s\t%s\t%s\n" "$name" "$rc" "$((SECONDS - start))" "$limit" "$log" "$note" >> "$STAGES"
  return $rc
}

# skip_stage NAME WHY: records a stage that could not run.
skip_stage() {
  echo "== $1 skipped: $2"
  printf "%s\tskipped\t0\t%s\t\t%s\n" "$1" "$(limit_of "$1")" "$2" >> "$STAGES"
}

# ---- install (no network)
# The dry run leaves this environment alone: the wheels go to a scratch --target
# (on the build's path, as `wheel` may be missing here) and the editable install is
# pip's --dry-run. Not PIP_* variables: pip reads those as its options.
CHECK_WHEEL_FLAGS=""
CHECK_EDITABLE_FLAGS=""
CHECK_BUILD_PATH=""
if [[ $DRY_RUN == 1 ]]; then
  CHECK_BUILD_PATH="$BASE/pip_target"
  CHECK_WHEEL_FLAGS="--target=$CHECK_BUILD_PATH"
  CHECK_EDITABLE_FLAGS=--dry-run
fi
export PYTHON CHECK_WHEEL_FLAGS CHECK_EDITABLE_FLAGS CHECK_BUILD_PATH
# By name: a package already installed (any version) is left as it is.
# shellcheck disable=SC2016
if [[ $DRY_RUN == 1 ]] && ! ls .whl/*.whl >/dev/null 2>&1; then
  # A fresh clone (CI) has no .whl/ (filled only before a GPU session): nothing to install from.
  skip_stage install "dry run without .whl/ (fill it as the README says to exercise this stage)"
else
run_stage install "$(ls .whl/*.whl 2>/dev/null | wc -l) wheels in .whl/" bash -c '
  names=$(sed -e "s/#.*//" -e "s/[=<>; ].*//" scripts/gpu_wheels.txt | grep -v "^$")
  "$PYTHON" -m pip install --no-index --no-deps --find-links=.whl $CHECK_WHEEL_FLAGS $names &&
    PYTHONPATH="${CHECK_BUILD_PATH:+$CHECK_BUILD_PATH:}$PYTHONPATH" "$PYTHON" -m pip install \
      --no-index --no-deps --no-build-isolation $CHECK_EDITABLE_FLAGS -e .'
fi

# ---- imports
run_stage imports "" "$PYTHON" -c "
import importlib, sys
need = ['jax', 'flax', 'optax', 'orbax.checkpoint', 'chex', 'sentencepiece', 'ml_collections',
        'absl', 'tqdm', 'numpy', 'pytest', 'mamba_jax', 'train', 'benchmarks.scan',
        'benchmarks.train_throughput']
missing = []
for name in need:
  try:
    importlib.import_module(name)
  except ImportError as e:
    missing.append(f'{name} ({e})')
import jax
print('backend', jax.default_backend(), jax.devices())
if missing:
  sys.exit('missing modules: ' + '; '.join(missing) + ' -> add their wheels to .whl/ (README \"GPU session\")')
"

# ---- GPU tests
GPU_TESTS_OK=0
run_stage gpu_tests "pytest -k Gpu" "$PYTHON" -m pytest -q -p no:cacheprovider -n 0 \
  tests/test_pallas_scan.py -k Gpu && GPU_TESTS_OK=1  # -n 0: one process on the GPU.

# ---- scan benchmark
run_stage scan_benchmark "" "$PYTHON" -m benchmarks.scan "${SCAN_ARGS[@]}"
# The report this run wrote ("Wrote <json> and <md>"), or none.
SCAN_REPORT=$(sed -n 's/^Wrote \(.*\.json\) and .*/\1/p' "$LOGS/scan_benchmark.log" | tail -n 1)

# ---- training throughput
run_stage train_throughput "" "$PYTHON" -m benchmarks.train_throughput "${THROUGHPUT_ARGS[@]}"

# ---- training runs with the fastest correct method
EXCLUDE=pallas  # Not correct until the GPU tests pass (on a CPU they are skipped: rc 0).
if [[ $GPU_TESTS_OK == 1 ]]; then EXCLUDE=""; fi
# pick_method CASE [FAMILY]: the fastest correct method of CASE among FAMILY's (default
# selective_scan; ssd prints the recurrence a Mamba-2 config's scan_method takes), or auto.
pick_method() {
  "$PYTHON" -m benchmarks.fastest_method --report="$SCAN_REPORT" --case="$1" --exclude="$EXCLUDE" \
    --family="${2:-selective_scan}" 2>> "$LOGS/pick_method.log" || echo auto
}
train_stage() {
  local name=$1 config=$2 steps=$3 method=$4
  if [[ $DRY_RUN == 0 ]] && ! ls .carry/data_cache/sentiment140-*/spm-bpe*/tokens_L64.npz > /dev/null 2>&1; then
    skip_stage "$name" "no token cache in .carry/data_cache (README \"GPU session\")"
    return
  fi
  run_stage "$name" "method=$method steps=$steps" "$PYTHON" -m train.main --config="$config" \
    --workdir="$WORKDIRS/$name" --config.model.scan_method="$method" \
    --config.num_train_steps="$steps"
  mkdir -p "$RUN_DIR/$name"
  cp "$WORKDIRS/$name"/eval_report.json "$WORKDIRS/$name"/metrics.jsonl "$RUN_DIR/$name/" 2>/dev/null
}
train_stage train_sent140 "$SENT140_CONFIG" "$SENT140_STEPS" "$(pick_method "$CASE_FP32")"
train_stage train_mamba2 "$MAMBA2_CONFIG" "$SENT140_STEPS" "$(pick_method "$CASE_FP32" ssd)"
train_stage train_large "$LARGE_CONFIG" "$LARGE_STEPS" "$(pick_method "$CASE_BF16")"

# ---- the Long Range Arena models at full length (ListOps, Image)
lra_stage() {
  local task ran=() missing=()
  for task in "${LRA_TASKS[@]}"; do
    if [[ $DRY_RUN == 0 ]] && ! ls .carry/data_cache/lra-"$task"-*/tokens_L*.npz > /dev/null 2>&1; then
      missing+=("$task")
    else
      ran+=("$task")
    fi
  done
  if [[ ${#ran[@]} == 0 ]]; then
    skip_stage lra "no LRA token cache in .carry/data_cache (README \"GPU session\"): ${missing[*]}"
    return
  fi
  local note="tasks ${ran[*]}${missing:+; no data: ${missing[*]}}" command=""
  for task in "${ran[@]}"; do  # One python -m train.lra per task, every model in it.
    command+="$(printf '%q ' "$PYTHON" -m train.lra --task="$task" --workdir_root="$WORKDIRS/lra" \
      --output_dir="$RESULTS/lra_gpu" "${LRA_ARGS[@]}")&& "
  done
  run_stage lra "$note" bash -c "${command}true"
}
lra_stage

# ---- summary (printed last) and the copy to $OUT
"$PYTHON" scripts/gpu_check_summary.py --run_dir="$RUN_DIR" --scan_report="$SCAN_REPORT" \
  > "$RUN_DIR/summary.md"
SUMMARY_RC=$?
if [[ -n ${OUT:-} ]]; then
  mkdir -p "$OUT/results" && cp -r "$RESULTS"/. "$OUT/results/"
fi
cat "$RUN_DIR/summary.md"
if [[ $SUMMARY_RC != 0 ]]; then exit 1; fi
