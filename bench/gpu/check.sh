#!/usr/bin/env bash
# The GPU check, on the device machine (NVIDIA H200, no network), from the repo root:
#
#   bash bench/gpu/check.sh OUT_DIR          (device tool: carry [".gl", ".gpu"])
#
# Needs .gpu/ (bench/gpu/build-artefacts.sh) and .gl/ (the Vulkan loader debs; see
# bench/gpu/README.md). In order, each part bounded by `timeout` and by the whole run's budget
# (BUDGET seconds, default 400), each failure recorded and the next part run anyway:
#   1. setup: the .gl debs unpacked into /, the NVIDIA Vulkan ICD found (VK_DRIVER_FILES),
#      the binaries unpacked, the test binaries' compiled-in specs path made to exist
#   2. nvidia-smi (name, driver, clocks) and `genc devices --device gpu`
#   3. in the background while 4 runs: `genc compile --emit program` and `genc summary` of
#      each model (kernels per phase, parameters), then each PyTorch peer once with --compile
#      (fills torch.compile's caches, so the timed compile runs in 5 do not compile from scratch)
#   4. the kernels and executor test binaries on the GPU (GENC_TEST_DEVICES=gpu,
#      --test-threads=1); then, while 3 still runs, executor's ignored `large_specs` one spec
#      at a time (GENC_TEST_SPEC)
#   5. training throughput for vae dcgan wgan_gp dcgan64 ddpm: `genc train --set device=gpu`,
#      then the PyTorch peer on CUDA eager, for every model; then the peers with --compile.
#      Steps/s as bench/train.sh measures them (genc: timestamped `step S/N` log lines, log
#      every 5 steps; torch: perf_counter around the timed steps, synchronized); GPU memory
#      peaks from nvidia-smi sampled every 0.2 s (and torch.cuda.max_memory_allocated)
#   6. the large_specs left over from 4, while the budget lasts
# Results: OUT_DIR/results.md (tables), OUT_DIR/results.json, OUT_DIR/check.log (this script's
# progress), OUT_DIR/logs.tar.gz (every command's log); rewritten after each part, so a run cut
# short still leaves what it had. Four files: the device tool brings back at most eight.
#
# Environment: BUDGET (seconds, default 400), MODELS (default "vae dcgan wgan_gp dcgan64 ddpm"),
# STEPS (timed steps for every model; default per model below), PYTHON (default python3),
# GENC_BIN (a genc binary instead of .gpu's), PEER_DEVICE (default cuda), SKIP_GL=1 (do not
# unpack .gl: for a dry run on another machine), WORK (scratch, default /tmp/genc-gpu-check).
set -uo pipefail

OUTDIR=${1:?usage: bash bench/gpu/check.sh OUT_DIR}
T0=$SECONDS
BUDGET=${BUDGET:-400}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
mkdir -p "$OUTDIR" && OUTDIR=$(cd "$OUTDIR" && pwd) || exit 2
WORK=${WORK:-/tmp/genc-gpu-check}
rm -rf "$WORK"
LOGS=$WORK/logs
mkdir -p "$LOGS" "$WORK/bin" "$WORK/data" "$WORK/runs"
REC=$LOGS/records.tsv
: >"$REC"
: >"$OUTDIR/check.log"
PY=${PYTHON:-python3}
PEER_DEVICE=${PEER_DEVICE:-cuda}
read -r -a MODELS <<<"${MODELS:-vae dcgan wgan_gp dcgan64 ddpm}"
LARGE=(pix2pix pixelcnn dcgan64 srgan realnvp pixelrnn ddpm)
declare -A NSTEPS=([vae]=200 [dcgan]=100 [wgan_gp]=50 [dcgan64]=50 [ddpm]=50)
WARMUP=5 # genc and eager; genc logs every 5 steps, so W and N are multiples of 5
WARMUP_COMPILE=10
NEVER=1000000000
RESERVE=15 # seconds kept for the last report
export LC_ALL=C PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1

now() { echo $((SECONDS - T0)); }
left() { echo $((BUDGET - (SECONDS - T0))); }
note() { echo "[$(now)s] $*" | tee -a "$OUTDIR/check.log"; }
rec() { printf '%s\t%s\n' "$1" "${2//$'\n'/ }" >>"$REC"; }
# A timeout: at most $1 seconds, and never past the budget less RESERVE.
cap() {
    local want=$1 l
    l=$(($(left) - RESERVE))
    ((want < l)) && echo "$want" || echo "$l"
}
# Results and logs into OUTDIR (after every part).
snapshot() {
    rec elapsed "$(now)"
    "$PY" "$ROOT/bench/gpu/report.py" "$WORK" "$OUTDIR" >"$LOGS/report.log" 2>&1 ||
        echo "report.py failed: $(tail -n 3 "$LOGS/report.log")"
    tar -C "$WORK" -czf "$OUTDIR/logs.tar.gz" logs 2>/dev/null
}
# run_logged NAME SECONDS CMD...: CMD's stdout and stderr into logs/NAME.log, bounded.
run_logged() {
    local name=$1 t=$2 start=$SECONDS rc
    shift 2
    if ((t < 5)); then
        note "skip $name: out of time"
        rec "$name.status" "skipped: out of time"
        return 125
    fi
    note "$name (timeout ${t}s)"
    timeout -k 5 "$t" "$@" >"$LOGS/$name.log" 2>&1
    rc=$?
    status_of "$name" "$rc" "$t" "$start"
    return "$rc"
}
status_of() {
    local name=$1 rc=$2 t=$3 start=$4 s
    case $rc in
        0) s=ok ;;
        124 | 137) s="timeout after ${t}s" ;;
        *) s="failed (exit $rc)" ;;
    esac
    rec "$name.status" "$s"
    rec "$name.rc" "$rc"
    rec "$name.seconds" "$((SECONDS - start))"
    note "  $name: $s in $((SECONDS - start))s"
}
# GPU memory in use, sampled every 0.2 s into $1 until mem_stop.
MEM_PID=
mem_start() {
    : >"$1"
    command -v nvidia-smi >/dev/null || return 0
    (
        while :; do
            timeout 5 nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits >>"$1" 2>/dev/null
            sleep 0.2
        done
    ) &
    MEM_PID=$!
}
mem_stop() {
    [[ -n $MEM_PID ]] && kill "$MEM_PID" 2>/dev/null && wait "$MEM_PID" 2>/dev/null
    MEM_PID=
}
smi_query() {
    command -v nvidia-smi >/dev/null || return 0
    local q=name,driver_version,pstate,clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem
    q+=,clocks.applications.graphics,power.draw,power.limit,temperature.gpu,memory.used,memory.total
    q+=,utilization.gpu,clocks_event_reasons.active
    timeout 20 nvidia-smi --query-gpu=$q --format=csv >"$LOGS/smi-$1.csv" 2>&1 ||
        timeout 20 nvidia-smi --query-gpu=${q%,clocks_event_reasons.active} --format=csv >"$LOGS/smi-$1.csv" 2>&1
}
# Prefixes each line with the wall-clock time it arrived (no forks).
stamp() {
    local line
    while IFS= read -r line; do
        printf '%s %s\n' "$EPOCHREALTIME" "$line"
    done
}
rec budget "$BUDGET"
rec models "${MODELS[*]}"
rec started "$(date -u +%FT%TZ)"
rec host "$(uname -srm)"
[[ -f .gpu/manifest ]] && while IFS='=' read -r k v; do rec "manifest.$k" "$v"; done <.gpu/manifest

# ---- 1. setup
note "setup in $ROOT, scratch $WORK, results into $OUTDIR"
if [[ ${SKIP_GL:-0} != 1 ]]; then
    if compgen -G ".gl/*.deb" >/dev/null; then
        for f in .gl/*.deb; do dpkg -x "$f" / || note "dpkg -x $f failed"; done
        ldconfig
    else
        note "no .gl/*.deb: the image's own Vulkan loader, if any"
    fi
fi
ldconfig -p 2>/dev/null | grep -E 'libvulkan|libGLX_nvidia|libnvidia-glcore|libEGL_nvidia' >"$LOGS/ldconfig.log"
icd=
for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
    /etc/vulkan/icd.d/nvidia_icd.json /usr/local/share/vulkan/icd.d/nvidia_icd.json \
    /usr/share/vulkan/icd.d/nvidia_icd.x86_64.json /etc/vulkan/icd.d/nvidia_icd.x86_64.json; do
    [[ -f $f ]] && icd=$f && break
done
if [[ -z $icd ]]; then
    icd=$(find /usr/local/nvidia /usr/share/vulkan /etc/vulkan /usr/local/share/vulkan \
        -name 'nvidia*icd*.json' 2>/dev/null | head -n 1)
fi
glx=$(ldconfig -p 2>/dev/null | awk '/libGLX_nvidia\.so\.0/ { print $NF; exit }')
if [[ -z $glx ]]; then
    glx=$(find /usr/local/nvidia /usr/lib /usr/lib64 -name 'libGLX_nvidia.so.0' 2>/dev/null | head -n 1)
    [[ -n $glx ]] && export LD_LIBRARY_PATH=$(dirname "$glx")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
if [[ -z $icd && -n $glx ]]; then
    icd=$WORK/nvidia_icd.json
    printf '{"file_format_version": "1.0.0", "ICD": {"library_path": "%s", "api_version": "1.3"}}\n' \
        "$glx" >"$icd"
    note "no NVIDIA Vulkan ICD file; wrote $icd for $glx"
fi
if [[ -n $icd ]]; then
    export VK_DRIVER_FILES=$icd VK_ICD_FILENAMES=$icd
    cp "$icd" "$LOGS/icd.json"
fi
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[[ -f $egl ]] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
export XDG_RUNTIME_DIR=/tmp/xdg-genc
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
rec setup.icd "${icd:-none}"
rec setup.libGLX_nvidia "${glx:-none}"
rec setup.libvulkan "$(ldconfig -p 2>/dev/null | awk '/libvulkan\.so\.1/ { print $NF; exit }')"
note "Vulkan ICD: ${icd:-none}; libGLX_nvidia: ${glx:-none}"

for f in .gpu/bin/*.xz; do
    [[ -f $f ]] || continue
    n=$(basename "$f" .xz)
    if command -v xz >/dev/null; then
        xz -dc "$f" >"$WORK/bin/$n"
    else
        "$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
            "$f" "$WORK/bin/$n"
    fi || note "could not unpack $f"
    chmod +x "$WORK/bin/$n"
done
GENC=${GENC_BIN:-$WORK/bin/genc}
[[ -x $GENC ]] || note "no genc binary ($GENC): the genc parts will fail"
FM=$ROOT/.gpu/data/fashion-mnist
[[ -f $FM/train-images-idx3-ubyte.gz ]] || FM=/usr/share/datasets/fashion-mnist
export GENC_FASHION_MNIST=$FM
PNG=$WORK/data/dcgan64-png
tar -xf .gpu/data/dcgan64-png.tar -C "$WORK/data" 2>/dev/null || note "no .gpu/data/dcgan64-png.tar"
rec setup.fashion_mnist "$FM"
rec setup.dcgan64_images "$(find "$PNG" -name '*.png' 2>/dev/null | wc -l)"
# The test binaries read specs from their compiled-in CARGO_MANIFEST_DIR/../specs.
runtime_dir=$(sed -n 's/^runtime_dir=//p' .gpu/manifest 2>/dev/null)
if [[ -n $runtime_dir && ! -e $runtime_dir/../specs ]]; then
    mkdir -p "$runtime_dir" && ln -sfn "$ROOT/specs" "$(dirname "$runtime_dir")/specs" &&
        note "linked $(dirname "$runtime_dir")/specs -> $ROOT/specs for the test binaries"
fi
for b in "$WORK"/bin/*; do
    [[ -f $b ]] && { echo "== $b"; ldd "$b"; } >>"$LOGS/ldd.log" 2>&1
done
rec setup.seconds "$(now)"

# ---- 2. the GPU and genc's view of it
smi_query start
command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi >"$LOGS/nvidia-smi.log" 2>&1 &&
    timeout 20 nvidia-smi -q -d CLOCK,PERFORMANCE,POWER >>"$LOGS/nvidia-smi.log" 2>&1
command -v nvidia-smi >/dev/null || rec smi.status "no nvidia-smi"
run_logged devices "$(cap 60)" "$GENC" devices --device gpu
snapshot

# ---- 3. background: kernel counts, parameter counts, torch.compile caches
BG_END=$((T0 + ${BG_SECONDS:-190}))
prewarm() {
    local m=$1 t data=$FM
    t=$((BG_END - SECONDS))
    ((t > 10)) || return
    [[ $m == dcgan64 ]] && data=$PNG
    (cd bench/peers && timeout -k 5 "$t" "$PY" "$m.py" --device "$PEER_DEVICE" --compile --steps 1 \
        --warmup 3 --data "$data" >"$LOGS/prewarm-$m.json" 2>"$LOGS/prewarm-$m.log")
    echo "prewarm $m: exit $? at $((SECONDS - T0))s" >>"$LOGS/prewarm.log"
}
(
    # Two lanes: ddpm (the longest compile) alone, the other models one after another.
    if [[ " ${MODELS[*]} " == *" ddpm "* ]]; then prewarm ddpm & fi
    for m in "${MODELS[@]}"; do
        t=$((BG_END - SECONDS < 30 ? BG_END - SECONDS : 30))
        ((t > 2)) || break
        timeout -k 5 "$t" "$GENC" compile "specs/$m.gen" --emit program >/dev/null 2>"$LOGS/program-$m.log"
        timeout -k 5 "$t" "$GENC" summary "specs/$m.gen" >"$LOGS/summary-$m.log" 2>&1
    done
    for m in "${MODELS[@]}"; do
        [[ $m == ddpm ]] || prewarm "$m"
    done
    wait
) &
BG_PID=$!
bg_running() { kill -0 "$BG_PID" 2>/dev/null; }

# ---- 4. tests on the GPU
export GENC_TEST_DEVICES=gpu RUST_BACKTRACE=1
test_bin() {
    local name=$1 t=$2
    shift 2
    if [[ ! -x $WORK/bin/$name ]]; then
        rec "tests-$name.status" "missing: no .gpu/bin/$name.xz"
        return
    fi
    run_logged "tests-$name" "$t" "$WORK/bin/$name" --test-threads=1 "$@"
}
test_bin kernels "$(cap 60)"
test_bin executor "$(cap 90)"
snapshot
declare -A LARGE_DONE=()
large_spec() {
    local s=$1 t=$2
    [[ -x $WORK/bin/executor ]] || return
    LARGE_DONE[$s]=1
    GENC_TEST_SPEC=$s run_logged "tests-large-$s" "$t" "$WORK/bin/executor" --test-threads=1 \
        --ignored --exact large_specs --nocapture
}
# While the background part runs, the large specs one at a time; one still running when the
# background part ends is stopped (the benchmark needs the machine to itself) and left for 6.
for s in "${LARGE[@]}"; do
    [[ -x $WORK/bin/executor ]] || break
    bg_running || break
    t=$(cap 90)
    ((t >= 20)) || break
    note "tests-large-$s (timeout ${t}s, stopped when the background part ends)"
    start=$SECONDS
    GENC_TEST_SPEC=$s timeout -k 5 "$t" "$WORK/bin/executor" --test-threads=1 --ignored --exact \
        large_specs --nocapture >"$LOGS/tests-large-$s.log" 2>&1 &
    lpid=$!
    while bg_running && kill -0 "$lpid" 2>/dev/null; do sleep 1; done
    if kill -0 "$lpid" 2>/dev/null; then
        kill "$lpid" 2>/dev/null
        wait "$lpid" 2>/dev/null
        mv "$LOGS/tests-large-$s.log" "$LOGS/tests-large-$s.stopped.log"
        note "  tests-large-$s: stopped after $((SECONDS - start))s for the benchmark"
        break
    fi
    wait "$lpid"
    status_of "tests-large-$s" "$?" "$t" "$start"
    LARGE_DONE[$s]=1
done
if bg_running; then
    note "waiting for the background part (kernel counts, torch.compile caches)"
    wait "$BG_PID"
fi
snapshot

# ---- 5. training throughput
smi_query bench
genc_run() {
    local m=$1 n=$2 t data start rc
    t=$(cap $([[ $m == ddpm || $m == dcgan64 ]] && echo 120 || echo 75))
    data=$FM
    [[ $m == dcgan64 ]] && data=$PNG
    rec "genc-$m.steps" "$n"
    rec "genc-$m.warmup" "$WARMUP"
    if ((t < 5)); then
        note "skip genc-$m: out of time"
        rec "genc-$m.status" "skipped: out of time"
        return
    fi
    note "genc-$m: genc train specs/$m.gen, $n timed steps after $WARMUP (timeout ${t}s)"
    start=$SECONDS
    mem_start "$LOGS/mem-genc-$m.txt"
    {
        echo "launch"
        timeout -k 5 "$t" "$GENC" train "specs/$m.gen" --set device=gpu --set "steps=$((n + WARMUP))" \
            --set log_every=5 --set "sample_every=$NEVER" --set "eval_every=$NEVER" \
            --set "checkpoint_every=$NEVER" --set "data=$data" --out "$WORK/runs/$m" 2>&1
        echo "exit $?"
    } | stamp >"$LOGS/genc-$m.log"
    mem_stop
    rc=$(awk '$2 == "exit" { print $3 }' "$LOGS/genc-$m.log" | tail -n 1)
    status_of "genc-$m" "${rc:-1}" "$t" "$start"
}
torch_run() {
    local mode=$1 m=$2 n=$3 w=$4 t data start rc flags=()
    t=$(cap $([[ $mode == compile ]] && echo 120 || echo 60))
    data=$FM
    [[ $m == dcgan64 ]] && data=$PNG
    [[ $mode == compile ]] && flags=(--compile)
    rec "$mode-$m.steps" "$n"
    rec "$mode-$m.warmup" "$w"
    if ((t < 5)); then
        note "skip $mode-$m: out of time"
        rec "$mode-$m.status" "skipped: out of time"
        return
    fi
    note "$mode-$m: bench/peers/$m.py --device $PEER_DEVICE ${flags[*]}, $n timed steps after $w (timeout ${t}s)"
    start=$SECONDS
    mem_start "$LOGS/mem-$mode-$m.txt"
    (cd bench/peers && timeout -k 5 "$t" "$PY" "$m.py" --device "$PEER_DEVICE" "${flags[@]}" --steps "$n" \
        --warmup "$w" --data "$data" >"$LOGS/$mode-$m.json" 2>"$LOGS/$mode-$m.log")
    rc=$?
    mem_stop
    status_of "$mode-$m" "$rc" "$t" "$start"
}
for m in "${MODELS[@]}"; do
    n=${STEPS:-${NSTEPS[$m]:-50}}
    genc_run "$m" "$n"
    torch_run eager "$m" "$n" "$WARMUP"
    snapshot
done
for m in "${MODELS[@]}"; do
    n=${STEPS:-${NSTEPS[$m]:-50}}
    torch_run compile "$m" "$n" "$WARMUP_COMPILE"
    snapshot
done
smi_query end

# ---- 6. the large specs still to run
for s in "${LARGE[@]}"; do
    [[ -n ${LARGE_DONE[$s]:-} ]] && continue
    t=$(cap 90)
    ((t >= 20)) || {
        if [[ -f $LOGS/tests-large-$s.stopped.log ]]; then
            rec "tests-large-$s.status" "stopped for the benchmark, then out of time"
        else
            rec "tests-large-$s.status" "skipped: out of time"
        fi
        continue
    }
    large_spec "$s" "$t"
done
note "done in $(now)s"
snapshot
cat "$OUTDIR/results.md" 2>/dev/null
exit 0
