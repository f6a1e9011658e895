#!/usr/bin/env bash
# The quality table (docs/quality.md): train a family with its documented budget, then score
# the trained run with `genc eval`, and for VAE, DCGAN-28 and WGAN-GP train the PyTorch peer of
# the same architecture with the same budget and score its samples with the same metric.
#
#   bench/quality.sh FAMILY...          families: the names in the BUDGET table below
#   bench/quality.sh --list             the families, their budgets and what is scored
#
# Per family it leaves, under runs/quality/FAMILY (QUALITY_DIR to change it):
#   run/            the genc run folder (metrics.jsonl, sample grids, last.safetensors)
#   genc.json       `genc eval run --json`: the spec's test-set evals on the last checkpoint,
#                   and the sample metrics of --n draws from its sampler (when it draws
#                   28x28 grayscale images)
#   peer.json       the peer's training JSON line (steps/s, final losses, test figures)
#   peer-eval.json  `genc eval --images peer-samples.npy --json`
#   grid.png        a grid of 64 samples from the genc run (copied to docs/quality/FAMILY.png
#                   with --docs)
#   time.txt        wall time of the genc training and its device
#
# Environment:
#   PHASES      which of "train peer eval" to run (default all three; e.g. PHASES=eval to
#               re-score runs already trained)
#   DEVICE      genc's device (default auto: a GPU when there is one, else the host CPU)
#   GENC_BIN    the genc binary (default: a release build of this checkout)
#   PYTHON      the interpreter with torch and numpy (default /tmp/torchenv/bin/python)
#   THREADS     torch threads (default nproc)
#   N_SAMPLES   override the family's number of scored samples
#   SEED        train (genc and the peer) with this seed instead of the spec's, into
#               runs/quality/FAMILY-seedSEED (to see how much a figure moves between seeds)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export LC_ALL=C
export PYTHONDONTWRITEBYTECODE=1
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/xdg}
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/genc/target}
PYTHON=${PYTHON:-/tmp/torchenv/bin/python}
THREADS=${THREADS:-$(nproc)}
PHASES=${PHASES:-train peer eval}
DEVICE=${DEVICE:-auto}
OUT_ROOT=${QUALITY_DIR:-runs/quality}

# family | spec | genc settings (--set ...) | the sampler or `sample` entry drawn for the grid
# and scored ("-": the spec's first, "none": no grid) | samples scored (0: the spec's evals
# alone) | peer script and its steps ("-": no peer)
BUDGET=$(
    cat <<'EOF'
vae|bench/quality/vae_examples.gen|epochs=10|prior|10000|vae_examples.py 4680
dcgan|specs/dcgan.gen|epochs=5|-|10000|dcgan.py 2340
wgan_gp|specs/wgan_gp.gen|steps=1000|-|10000|wgan_gp.py 1000
wgan|specs/wgan.gen|steps=3000|-|10000|-
gan|specs/gan.gen|epochs=20|-|10000|-
cgan|specs/cgan.gen|epochs=10|-|10000|-
ae|specs/ae.gen|epochs=20|recon|0|-
sparse_ae|specs/sparse_ae.gen|epochs=50|recon|0|-
denoising_ae|specs/denoising_ae.gen|epochs=15|recon|0|-
contractive_ae|specs/contractive_ae.gen|epochs=20|recon|0|-
stacked_ae|specs/stacked_ae.gen|n_pre=1200 steps=10800|recon|0|-
pixelcnn|specs/pixelcnn.gen|steps=1000|autoregressive|100|-
pixelrnn|specs/pixelrnn.gen|epochs=1|autoregressive|100|-
realnvp|specs/realnvp.gen|steps=200|generate|2000|-
ddpm|specs/ddpm.gen|steps=100|reverse|16|-
srgan|specs/srgan.gen|pre_steps=1500 steps=2000|-|0|-
pix2pix|specs/pix2pix.gen|steps=3000|-|0|-
inpainting|specs/inpainting.gen|epochs=2|-|0|-
EOF
)

field() { awk -F'|' -v f="$1" -v k="$2" '$1 == f { print $k }' <<<"$BUDGET"; }

if [[ ${1:-} == --list ]]; then
    printf '%-15s %-34s %-26s %-15s %s\n' family spec budget sampler peer
    awk -F'|' '{ printf "%-15s %-34s %-26s %-15s %s\n", $1, $2, $3, $4 " x" $5, $6 }' <<<"$BUDGET"
    exit 0
fi
if (($# == 0)); then
    echo "usage: bench/quality.sh FAMILY...   (bench/quality.sh --list shows them)" >&2
    exit 2
fi
for f in "$@"; do
    if [[ -z $(field "$f" 2) ]]; then
        echo "unknown family \`$f\`; bench/quality.sh --list shows them" >&2
        exit 2
    fi
done

if [[ -z ${GENC_BIN:-} ]]; then
    cargo build --quiet --release --bin genc
    GENC_BIN=$CARGO_TARGET_DIR/release/genc
fi
has_phase() { [[ " $PHASES " == *" $1 "* ]]; }
failed=()

for f in "$@"; do
    spec=$(field "$f" 2) settings=$(field "$f" 3) sampler=$(field "$f" 4) n=${N_SAMPLES:-$(field "$f" 5)}
    peer=$(field "$f" 6)
    dir=$OUT_ROOT/$f${SEED:+-seed$SEED}
    mkdir -p "$dir"
    if has_phase train; then
        sets=()
        for s in $settings; do sets+=(--set "$s"); done
        [[ -n ${SEED:-} ]] && sets+=(--set "seed=$SEED")
        rm -rf "$dir/run"
        echo "== $f: genc train $spec ${settings} on $DEVICE (log $dir/train.log)" >&2
        start=$EPOCHREALTIME
        nice "$GENC_BIN" train "$spec" "${sets[@]}" --set "device=$DEVICE" --out "$dir/run" 2>&1 |
            tee "$dir/train.log" | grep -E '^(step [0-9]+/[0-9]+: eval|done|error)' >&2 || true
        if [[ ! -f $dir/run/last.safetensors ]]; then
            # A run that stopped (a diverged GAN) is a result too: say so, go on with the next.
            echo "   training $f stopped before its first checkpoint: see $dir/train.log" >&2
            failed+=("$f")
            continue
        fi
        awk -v s="$start" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.0f s\n", e - s }' >"$dir/time.txt"
        grep -m1 '^done' "$dir/train.log" >>"$dir/time.txt" || true
    fi
    if has_phase peer && [[ $peer != - ]]; then
        read -r script steps <<<"$peer"
        echo "== $f: PyTorch peer $script, $steps steps, $THREADS threads" >&2
        (cd bench/peers && nice "$PYTHON" "$script" --steps "$steps" --warmup 0 --threads "$THREADS" --seed "${SEED:-0}" \
            --samples "$ROOT/$dir/peer-samples.npy" --n-samples "$n") >"$dir/peer.json"
        case $f in vae) range=0,1 ;; *) range=-1,1 ;; esac
        "$GENC_BIN" eval --images "$dir/peer-samples.npy" --range="$range" --json >"$dir/peer-eval.json"
    fi
    if has_phase eval; then
        args=(--json --n "$n")
        [[ $sampler != - && $sampler != none ]] && args+=(--sampler "$sampler")
        # cGAN's sample entry asks for class k mod 10 in sample k
        [[ $f == cgan ]] && args+=(--conditional)
        echo "== $f: genc eval ($n samples)" >&2
        "$GENC_BIN" eval "$dir/run" "${args[@]}" >"$dir/genc.json"
        # a grid of 64, or of the scored samples when fewer are affordable (DDPM's 1000 steps)
        grid_args=(--n "$(( n > 0 && n < 64 ? n : 64 ))" --out "$dir/grid.png")
        [[ $sampler != - && $sampler != none ]] && grid_args+=(--sampler "$sampler")
        [[ $sampler == none ]] || "$GENC_BIN" sample "$dir/run" "${grid_args[@]}" >&2
    fi
done
if ((${#failed[@]})); then
    echo "stopped before a checkpoint: ${failed[*]}" >&2
    exit 1
fi
