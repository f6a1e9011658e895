#!/usr/bin/env bash
# Training throughput: genc against the same models in PyTorch on this machine.
#
#   bench/train.sh [N] [models...]        N timed steps (default 200); models from vae dcgan
#                                         wgan_gp (default: all three)
#
# For each model it runs
#   genc:    cargo run --release --bin genc -- train specs/<m>.gen --set steps=N+W ...
#            --out /tmp/genc-bench-<m>
#   PyTorch: bench/peers/<m>.py --steps N --warmup W --threads T
# and prints  model | genc steps/s | torch steps/s | ratio (genc / torch) | genc end-to-end.
#
# Both sides skip W warm-up steps (WARMUP, default 5) and time the next N. genc's figure comes
# from the times its `step S/...` log lines reach this script (log_every = W, so there is one at
# step W and one at the last step; stderr is unbuffered); the sample, eval and checkpoint
# cadences are pushed past the end of the run, so they only fire after the last log line. The
# last column is genc's own `done:` line: all N+W steps, first-step shader compilation and the
# final sample/eval/checkpoint included.
#
# Environment:
#   PYTHON      the interpreter with torch and numpy (default /tmp/torchenv/bin/python; make it
#               with: python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy
#               --index-url https://download.pytorch.org/whl/cpu)
#   THREADS     torch.set_num_threads (default: LP_NUM_THREADS if set, else nproc: lavapipe
#               uses every core unless LP_NUM_THREADS says otherwise)
#   WARMUP      untimed warm-up steps on both sides (default 5)
#   GENC_BIN    run this genc binary instead of `cargo run --release --bin genc --`
#   SKIP_GENC=1 / SKIP_TORCH=1   run one half only
#   CARGO_TARGET_DIR (default $HOME/.cache/genc/target)
# Logs: /tmp/genc-bench-<m>.log (genc's stderr, timestamped) and /tmp/torch-bench-<m>.json.
set -euo pipefail

N=${1:-200}
shift || true
if ! [[ $N =~ ^[0-9]+$ ]] || ((N < 1)); then
    echo "usage: bench/train.sh [N] [models...]   (N: timed steps, a positive number)" >&2
    exit 2
fi
MODELS=("$@")
((${#MODELS[@]})) || MODELS=(vae dcgan wgan_gp)

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/genc/target}
export XDG_RUNTIME_DIR=/tmp/xdg
mkdir -p "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
PYTHON=${PYTHON:-/tmp/torchenv/bin/python}
THREADS=${THREADS:-${LP_NUM_THREADS:-$(nproc)}}
WARMUP=${WARMUP:-5}
if ! [[ $WARMUP =~ ^[0-9]+$ ]] || ((WARMUP < 1)); then
    echo "WARMUP must be a positive number of steps (genc logs every WARMUP steps)" >&2
    exit 2
fi
export LC_ALL=C # a '.' in $EPOCHREALTIME and in printed rates
export PYTHONDONTWRITEBYTECODE=1
NEVER=1000000000

for m in "${MODELS[@]}"; do
    if [[ ! -f specs/$m.gen || ! -f bench/peers/$m.py ]]; then
        echo "unknown model \`$m\`: expected specs/$m.gen and bench/peers/$m.py" >&2
        exit 2
    fi
done
if [[ ${SKIP_TORCH:-0} != 1 ]] && ! "$PYTHON" -c 'import torch, numpy' 2>/dev/null; then
    echo "$PYTHON cannot import torch and numpy; make the venv with:" >&2
    echo "  python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy --index-url https://download.pytorch.org/whl/cpu" >&2
    exit 2
fi

genc() {
    if [[ -n ${GENC_BIN:-} ]]; then
        "$GENC_BIN" "$@"
    else
        cargo run --quiet --release --bin genc -- "$@"
    fi
}

# Prefixes each line with the wall-clock time it arrived (bash's $EPOCHREALTIME, no forks).
stamp() {
    local line
    while IFS= read -r line; do
        printf '%s %s\n' "$EPOCHREALTIME" "$line"
    done
}

# genc's steady rate from a timestamped log: steps W+1..W+N between the two log lines.
genc_rate() {
    awk -v w="$WARMUP" -v last="$((N + WARMUP))" -v n="$N" '
        $2 == "step" { split($3, s, "/"); if (s[1] == w) t0 = $1; if (s[1] == last) t1 = $1 }
        END { if (t0 != "" && t1 != "" && t1 > t0) printf "%.4f", n / (t1 - t0) }' "$1"
}

# The rate in genc's `done: steps 1..=M in Xs (R steps/s)` line.
genc_done_rate() {
    sed -n 's/.*done: .*(\([0-9.]*\) steps\/s).*/\1/p' "$1" | tail -n 1
}

declare -A G_RATE G_DONE T_RATE
for m in "${MODELS[@]}"; do
    G_RATE[$m]=- G_DONE[$m]=- T_RATE[$m]=-
    if [[ ${SKIP_GENC:-0} != 1 ]]; then
        out=/tmp/genc-bench-$m log=/tmp/genc-bench-$m.log
        rm -rf "$out"
        echo "== genc: $m, $N timed steps after $WARMUP (log $log)" >&2
        if genc train "specs/$m.gen" --set "steps=$((N + WARMUP))" --set "log_every=$WARMUP" \
            --set "sample_every=$NEVER" --set "eval_every=$NEVER" --set "checkpoint_every=$NEVER" \
            --out "$out" 2>&1 | stamp | tee "$log" | sed -n 's/^[0-9.]* \(step\|done\|error\)/  \1/p' >&2; then
            G_RATE[$m]=$(genc_rate "$log")
            G_DONE[$m]=$(genc_done_rate "$log")
            [[ -n ${G_RATE[$m]} ]] || G_RATE[$m]=-
            [[ -n ${G_DONE[$m]} ]] || G_DONE[$m]=-
        else
            echo "  genc failed on $m; see $log" >&2
            G_RATE[$m]=fail
        fi
    fi
    if [[ ${SKIP_TORCH:-0} != 1 ]]; then
        json=/tmp/torch-bench-$m.json
        echo "== torch: $m, $N timed steps after $WARMUP, $THREADS threads" >&2
        if "$PYTHON" "bench/peers/$m.py" --steps "$N" --warmup "$WARMUP" --threads "$THREADS" >"$json"; then
            sed 's/^/  /' "$json" >&2
            T_RATE[$m]=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps_per_s"])' "$json")
        else
            echo "  the PyTorch peer failed on $m" >&2
            T_RATE[$m]=fail
        fi
    fi
done

echo
echo "$N timed steps after $WARMUP warm-up; torch threads $THREADS; LP_NUM_THREADS ${LP_NUM_THREADS:-unset}; $(nproc) cores"
printf '%-8s | %14s | %14s | %8s | %18s\n' model "genc steps/s" "torch steps/s" ratio "genc end-to-end"
printf '%s\n' "---------+----------------+----------------+----------+-------------------"
for m in "${MODELS[@]}"; do
    g=${G_RATE[$m]} t=${T_RATE[$m]}
    ratio=$(awk -v g="$g" -v t="$t" 'BEGIN { if (g + 0 > 0 && t + 0 > 0) printf "%.3f", g / t; else print "-" }')
    printf '%-8s | %14s | %14s | %8s | %18s\n' "$m" "$g" "$t" "$ratio" "${G_DONE[$m]}"
done
