#!/usr/bin/env bash
# One GPU training call of at most ~8 minutes: ranked fer-train jobs on the JAX backend, whose .keras
# files and logs come back under $OUT. Prepare here first:
#     .venv/bin/python tools/gpu_bundle.py pack        # .gpu_bundle/: FER2013 (fits 64 MiB) + Keras wheels
# then run on the device with carry [".gpu_bundle"]:  bash scripts/gpu_train.sh
#
# The jobs (scripts/gpu_jobs.txt, best first) share the budget: a 2-epoch probe measures ARCH-1's seconds per
# epoch, then each job gets as many epochs as fit its share of what is left at its own cost per epoch (a
# multiple of ARCH-1's), capped by the job's maximum, and is skipped when fewer than its minimum fit. Every job
# is ARCH-1 with the `best` recipe unless its line says otherwise; {job:NAME} in a line is the model an earlier
# job NAME trained (e.g. a distillation teacher); a job whose such model is missing is skipped.
# What comes back (at most 8 files, so at most 6 jobs): <job>.keras (the selected epoch), summary.json (each
# job's epochs, seconds, results and its per-epoch log.csv) and gpu_train.log (this script's whole output).
#
# Environment: OUT (default ./gpu_out), FER_GPU_BUNDLE (default ./.gpu_bundle), FER_GPU_BUDGET_S (seconds
# for all jobs, default 420), KERAS_BACKEND (default jax), FER_GPU_JOBS (the job list), FER_GPU_MAX_EPOCHS
# (a cap on every job, for tests). On a CPU (tests) use KERAS_BACKEND=tensorflow.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
out=${OUT:-$root/gpu_out}
bundle=${FER_GPU_BUNDLE:-$root/.gpu_bundle}
budget=${FER_GPU_BUDGET_S:-420}
jobs_file=${FER_GPU_JOBS:-$root/scripts/gpu_jobs.txt}
work=$(mktemp -d /tmp/fer_gpu.XXXXXX)
python=${PYTHON:-python3}
mkdir -p "$out"
exec > >(tee "$out/gpu_train.log") 2>&1
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
export KERAS_BACKEND=${KERAS_BACKEND:-jax}
start=$(date +%s)

[ -f "$bundle/manifest.json" ] || { echo "gpu_train: no bundle at $bundle (run tools/gpu_bundle.py pack here and carry it)"; exit 2; }
if ! "$python" -c "import keras" 2>/dev/null; then
  ls "$bundle"/wheels/*.whl >/dev/null 2>&1 || { echo "gpu_train: Keras is missing and $bundle/wheels has no wheels"; exit 2; }
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" "$bundle"/wheels/*.whl
  export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$root:$root/training${PYTHONPATH:+:$PYTHONPATH}"
"$python" - <<'EOF'
import keras
print(f"keras {keras.__version__}, backend {keras.backend.backend()}")
if keras.backend.backend() == "jax":
    import jax
    print(f"jax {jax.__version__}, devices {jax.devices()}")
EOF
data="$work/fer2013.npz"
"$python" tools/gpu_bundle.py unpack --bundle "$bundle" --out "$data"

elapsed() { echo $(( $(date +%s) - start )); }
train() {  # train RUN_DIR EPOCHS EXTRA_ARGS...; JOB_TIMEOUT (s, 0 = none) stops a job that outruns its share
  local run=$1 epochs=$2; shift 2
  timeout "${JOB_TIMEOUT:-0}" "$python" -m fer_training.train --data "$data" --arch arch1 --profile best --epochs "$epochs" --run-dir "$run" "$@"
}

# Probe: seconds per epoch after compilation (the 2nd epoch of a 2-epoch run).
train "$work/probe" 2 --max-train-images 100000 >"$work/probe.log" 2>&1 || { cat "$work/probe.log"; exit 1; }
per_epoch=$("$python" -c "import csv,sys; r=list(csv.DictReader(open(sys.argv[1]))); print(max(1.0, float(r[-1]['seconds'])))" "$work/probe/log.csv")
echo "probe: ${per_epoch} s per epoch; $(elapsed) s used of ${budget}"

summary="$work/summary.jsonl"
: >"$summary"
record() {  # record JOB STATUS EPOCHS ARGS SECONDS RESULTS_JSON: one entry of summary.json
  "$python" - "$summary" "$@" <<'EOF'
import json, os, sys
path, job, status, epochs, args, seconds, results, log_csv = (sys.argv[1:9] + [""])[:8]
entry = dict(job=job, status=status, epochs=int(epochs), args=args, seconds=int(seconds))
if results and os.path.isfile(results):
    entry["results"] = json.load(open(results))
if log_csv and os.path.isfile(log_csv):
    entry["log_csv"] = open(log_csv).read()
open(path, "a").write(json.dumps(entry) + "\n")
EOF
}
while IFS='|' read -r name share min_epochs max_epochs cost args; do
  case "$name" in ''|'#'*) continue ;; esac
  left=$(( budget - $(elapsed) ))
  # {job:NAME} -> the model job NAME trained
  args=$(printf '%s' "$args" | sed -E "s#\{job:([A-Za-z0-9_]+)\}#$work/runs/\1/model.keras#g")
  missing=""
  for word in $args; do
    case "$word" in "$work"/runs/*/model.keras) [ -f "$word" ] || missing="$word" ;; esac
  done
  if [ -n "$missing" ]; then
    echo "job $name: skipped (needs $missing, which an earlier job did not produce)"
    record "$name" skipped 0 "$args" 0 ""
    continue
  fi
  epochs=$("$python" -c "import sys; left,share,per,cost,lo,hi,cap=map(float,sys.argv[1:8]); n=int(left*share/(per*cost)); n=min(n,int(hi),int(cap)); print(n if n>=lo else 0)" \
           "$left" "$share" "$per_epoch" "$cost" "$min_epochs" "$max_epochs" "${FER_GPU_MAX_EPOCHS:-100000}")
  if [ "$epochs" -eq 0 ]; then
    echo "job $name: skipped (${left} s left: fewer than $min_epochs epochs fit)"
    record "$name" skipped 0 "$args" 0 ""
    continue
  fi
  echo "job $name: $epochs epochs ($args), ${left} s left"
  t0=$(date +%s)
  # shellcheck disable=SC2086  # the job line's arguments are words
  # A job that outruns the estimate is stopped at the end of the budget; its best checkpoint still comes back.
  if JOB_TIMEOUT=$left train "$work/runs/$name" "$epochs" $args; then status=done; else status=stopped_or_failed; fi
  run="$work/runs/$name"
  model="$run/model.keras"; [ -f "$model" ] || model="$run/checkpoints/best.keras"
  [ -f "$model" ] && cp "$model" "$out/$name.keras"
  record "$name" "$status" "$epochs" "$args" $(( $(date +%s) - t0 )) "$run/results.json" "$run/log.csv"
done <"$jobs_file"
"$python" -c "import json,sys; print(json.dumps([json.loads(l) for l in open(sys.argv[1])], indent=2))" "$summary" >"$out/summary.json"
echo "done in $(elapsed) s; files in $out:"
ls -la "$out"
