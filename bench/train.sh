#!/usr/bin/env bash
# Training throughput: genc on each device against the same models in PyTorch on this machine.
#
#   bench/train.sh [N] [models...]        N timed steps (default 200); models from vae dcgan
#                                         wgan_gp dcgan64 ddpm (default: vae dcgan wgan_gp)
#
# For each model and each device of DEVICES (default "cpu vulkan-cpu": genc's host device
# and lavapipe) it runs
#   genc:    cargo run --release --bin genc -- train specs/<m>.gen --set device=<d>
#            --set steps=N+W ... --out /tmp/genc-bench-<m>-<d>
#   PyTorch: bench/peers/<m>.py --steps N --warmup W --threads T
# and prints, per model, steps/s of each genc device and of PyTorch, each genc rate's ratio
# to PyTorch's, and the peak resident memory (RSS) of every run, after a header that says
# what the machine was doing (load average, cores, threads, Mesa's shader cache).
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
#   GENC_BIN    run this genc binary instead of building target/release/genc
#   DEVICES     genc devices to run, space-separated (default "cpu vulkan-cpu")
#   GENC_THREADS  the host device's threads (default: every core)
#   SKIP_GENC=1 / SKIP_TORCH=1   run one half only
#   CARGO_TARGET_DIR (default $HOME/.cache/genc/target)
# Logs: /tmp/genc-bench-<m>-<d>.log (genc's stderr, timestamped), /tmp/torch-bench-<m>.json;
# peak RSS from /usr/bin/time when it is installed.
set -euo pipefail

N=${1:-200}
shift || true
if ! [[ $N =~ ^[0-9]+$ ]] || ((N < 1)); then
    echo "usage: bench/train.sh [N] [models...]   (N: timed steps, a positive number)" >&2
    exit 2
fi
MODELS=("$@")
((${#MODELS[@]})) || MODELS=(vae dcgan wgan_gp)
read -r -a DEVS <<<"${DEVICES:-cpu vulkan-cpu}"

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

# One release build up front, so every run times genc alone (and GNU time sees its RSS).
if [[ -z ${GENC_BIN:-} && ${SKIP_GENC:-0} != 1 ]]; then
    cargo build --quiet --release --bin genc
    GENC_BIN=$CARGO_TARGET_DIR/release/genc
fi

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

# Peak RSS in MiB of a command, written to the file named by $RSS_FILE (GNU time's %M).
measured() {
    if [[ -x /usr/bin/time ]]; then
        /usr/bin/time -f '%M' -o "$RSS_FILE" "$@"
    else
        echo - >"$RSS_FILE"
        "$@"
    fi
}
rss_mib() {
    awk 'END { if ($1 ~ /^[0-9]+$/) printf "%.0f", $1 / 1024; else print "-" }' "$1" 2>/dev/null || echo -
}

conditions="load average $(cut -d' ' -f1-3 /proc/loadavg) at start; $(nproc) cores; torch threads $THREADS; \
GENC_THREADS ${GENC_THREADS:-unset (all cores)}; LP_NUM_THREADS ${LP_NUM_THREADS:-unset}; \
Mesa shader cache $(du -sh "${MESA_SHADER_CACHE_DIR:-$HOME/.cache/mesa_shader_cache}" 2>/dev/null | cut -f1 || echo empty)"
echo "conditions: $conditions" >&2

declare -A G_RATE G_DONE G_RSS T_RATE T_RSS
for m in "${MODELS[@]}"; do
    T_RATE[$m]=- T_RSS[$m]=-
    for d in "${DEVS[@]}"; do
        k="$m/$d"
        G_RATE[$k]=- G_DONE[$k]=- G_RSS[$k]=-
        [[ ${SKIP_GENC:-0} == 1 ]] && continue
        out=/tmp/genc-bench-$m-$d log=/tmp/genc-bench-$m-$d.log RSS_FILE=/tmp/genc-bench-$m-$d.rss
        rm -rf "$out"
        echo "== genc: $m on $d, $N timed steps after $WARMUP (log $log; load $(cut -d' ' -f1 /proc/loadavg))" >&2
        if measured "$GENC_BIN" train "specs/$m.gen" --set "device=$d" --set "steps=$((N + WARMUP))" --set "log_every=$WARMUP" \
            --set "sample_every=$NEVER" --set "eval_every=$NEVER" --set "checkpoint_every=$NEVER" \
            --out "$out" 2>&1 | stamp | tee "$log" | sed -n 's/^[0-9.]* \(step\|done\|error\)/  \1/p' >&2; then
            G_RATE[$k]=$(genc_rate "$log")
            G_DONE[$k]=$(genc_done_rate "$log")
            G_RSS[$k]=$(rss_mib "$RSS_FILE")
            [[ -n ${G_RATE[$k]} ]] || G_RATE[$k]=-
            [[ -n ${G_DONE[$k]} ]] || G_DONE[$k]=-
        else
            echo "  genc failed on $m ($d); see $log" >&2
            G_RATE[$k]=fail
        fi
    done
    if [[ ${SKIP_TORCH:-0} != 1 ]]; then
        json=/tmp/torch-bench-$m.json RSS_FILE=/tmp/torch-bench-$m.rss
        echo "== torch: $m, $N timed steps after $WARMUP, $THREADS threads" >&2
        if measured "$PYTHON" "bench/peers/$m.py" --steps "$N" --warmup "$WARMUP" --threads "$THREADS" >"$json"; then
            sed 's/^/  /' "$json" >&2
            T_RATE[$m]=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["steps_per_s"])' "$json")
            T_RSS[$m]=$(rss_mib "$RSS_FILE")
        else
            echo "  the PyTorch peer failed on $m" >&2
            T_RATE[$m]=fail
        fi
    fi
done

ratio() { awk -v g="$1" -v t="$2" 'BEGIN { if (g + 0 > 0 && t + 0 > 0) printf "%.3f", g / t; else print "-" }'; }
echo
echo "$N timed steps after $WARMUP warm-up; $conditions"
header="| model | torch steps/s | torch RSS MiB |"
rule="| --- | --- | --- |"
for d in "${DEVS[@]}"; do
    header+=" genc $d steps/s | $d / torch | genc $d RSS MiB | genc $d end-to-end |"
    rule+=" --- | --- | --- | --- |"
done
echo "$header"
echo "$rule"
for m in "${MODELS[@]}"; do
    row="| $m | ${T_RATE[$m]} | ${T_RSS[$m]} |"
    for d in "${DEVS[@]}"; do
        k="$m/$d"
        row+=" ${G_RATE[$k]} | $(ratio "${G_RATE[$k]}" "${T_RATE[$m]}") | ${G_RSS[$k]} | ${G_DONE[$k]} |"
    done
    echo "$row"
done
