#!/usr/bin/env bash
# Packs what bench/gpu/check.sh needs on the GPU machine (no network, no Rust toolchain) into
# .gpu/ (git-ignored; carried with the device tool's `carry: [".gl", ".gpu"]`).
#
# Run it here, from anywhere in the repo, after the release builds:
#
#   export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/genc/target}
#   cargo build --release --bin genc
#   cargo test --release --no-run -p genc-runtime --test kernels --test executor
#   bash bench/gpu/build-artefacts.sh
#
# It writes
#   .gpu/bin/{genc,kernels,executor}.xz   the release genc and the two test executables,
#                                         stripped, xz-compressed (xz or python's lzma unpack them)
#   .gpu/data/fashion-mnist/              Fashion-MNIST as gzipped IDX files, REDUCED (below)
#   .gpu/data/dcgan64-png.tar             1280 64x64 PNG images for specs/dcgan64.gen's folder source
#   .gpu/manifest                         key=value: commit, dirty files, the test binaries'
#                                         CARGO_MANIFEST_DIR, max GLIBC version, sizes
#
# The data, and how the benchmark's data differ from the specs' (throughput is what is measured,
# and every data set lives in memory on both sides, so the work of a step is unchanged):
#   - Fashion-MNIST: the first FMNIST_TRAIN (default 12800 = 100 batches of 128) training images
#     and labels and the first FMNIST_TEST (default 2000) test images and labels, instead of
#     60000 and 10000 (the full gzipped training images alone are 26 MB). FMNIST_TRAIN=all
#     FMNIST_TEST=all carry the full set. Epochs are shorter: with the default, an epoch ends
#     every 100 to 200 batches; the benchmark's cadences are steps, not epochs.
#   - dcgan64: the spec reads folder(path: "data/celeba", size: 64) (any folder of images; no
#     colour data set ships with genc). The carried folder holds the first 1280 Fashion-MNIST
#     training images upscaled 28 -> 64 (nearest) as grayscale PNGs; genc's folder source and the
#     PyTorch peer both turn them into 3-channel 64x64 images in [-1, 1].
# Fashion-MNIST is read from $FMNIST_DIR, else /usr/share/datasets/fashion-mnist (Debian's
# dataset-fashion-mnist), else from that package's .deb, downloaded with `apt-get download`
# and unpacked under /tmp (nothing is installed).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/genc/target}
FMNIST_TRAIN=${FMNIST_TRAIN:-12800}
FMNIST_TEST=${FMNIST_TEST:-2000}
DCGAN64_IMAGES=${DCGAN64_IMAGES:-1280}
OUT=.gpu
PY=${PYTHON:-python3}

die() {
    echo "build-artefacts: $*" >&2
    exit 1
}

grep -qx '/.gpu/' .gitignore 2>/dev/null || echo "note: /.gpu/ is not in .gitignore; add it" >&2
[[ -d .gl ]] || echo "note: no .gl/ (the Vulkan loader debs); see bench/gpu/README.md" >&2

# 1. The binaries: genc, and the test executables cargo names in its JSON messages (a no-op
#    build once `cargo test --release --no-run ...` has run).
genc_bin=$CARGO_TARGET_DIR/release/genc
[[ -x $genc_bin ]] || die "no $genc_bin: run \`cargo build --release --bin genc\` first"
json=$(mktemp)
trap 'rm -f "$json"' EXIT
cargo test --release --no-run -p genc-runtime --test kernels --test executor --message-format=json \
    >"$json" || die "cargo test --release --no-run failed"
tests=$("$PY" - "$json" <<'EOF'
import json, os, sys
found = {}
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    t = m.get("target", {})
    if m.get("reason") == "compiler-artifact" and "test" in t.get("kind", []) and m.get("executable"):
        if t.get("name") in ("kernels", "executor"):
            found[t["name"]] = (m["executable"], os.path.dirname(m["manifest_path"]))
for name in ("kernels", "executor"):
    exe, manifest_dir = found[name]
    print(name, exe, manifest_dir)
EOF
) || die "could not find the kernels and executor test executables in cargo's JSON"
echo "$tests"
runtime_dir=$(awk '$1 == "executor" { print $3 }' <<<"$tests")

rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/data/fashion-mnist"
cp "$genc_bin" "$OUT/bin/genc"
while read -r name exe _; do
    cp "$exe" "$OUT/bin/$name"
done <<<"$tests"
strip "$OUT"/bin/*
echo "== binaries (stripped)"
ls -l "$OUT"/bin
glibc_max=0
for f in "$OUT"/bin/*; do
    v=$(objdump -T "$f" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
    echo "$(basename "$f"): needs GLIBC $v; libraries: $(objdump -p "$f" | awk '/NEEDED/ { printf "%s ", $2 }')"
    glibc_max=$(printf '%s\n%s\n' "$glibc_max" "$v" | sort -V | tail -n 1)
done
echo "max GLIBC required: $glibc_max (this machine: $(ldd --version | head -n 1 | awk '{ print $NF }'))"
echo "   (Vulkan's libvulkan.so.1 is loaded at run time, from .gl/ on the GPU machine)"

# 2. Fashion-MNIST, reduced.
src=${FMNIST_DIR:-}
if [[ -z $src ]]; then
    for d in /usr/share/datasets/fashion-mnist /usr/local/share/datasets/fashion-mnist \
        /tmp/genc-fmnist/usr/share/datasets/fashion-mnist; do
        [[ -f $d/train-images-idx3-ubyte.gz ]] && src=$d && break
    done
fi
if [[ -z $src ]]; then
    echo "== Fashion-MNIST: not installed; unpacking Debian's dataset-fashion-mnist under /tmp/genc-fmnist"
    mkdir -p /tmp/genc-fmnist
    (cd /tmp/genc-fmnist && apt-get download dataset-fashion-mnist) || die "apt-get download dataset-fashion-mnist failed"
    dpkg -x /tmp/genc-fmnist/dataset-fashion-mnist_*.deb /tmp/genc-fmnist || die "dpkg -x failed"
    src=/tmp/genc-fmnist/usr/share/datasets/fashion-mnist
fi
echo "== Fashion-MNIST from $src"
ls -l "$src"
"$PY" bench/gpu/make_data.py "$src" "$OUT/data/fashion-mnist" "$FMNIST_TRAIN" "$FMNIST_TEST" \
    "$OUT/data/dcgan64-png" "$DCGAN64_IMAGES" || die "could not write the data"
tar -C "$OUT/data" -cf "$OUT/data/dcgan64-png.tar" dcgan64-png && rm -rf "$OUT/data/dcgan64-png"

# 3. Compress the binaries (xz; the GPU machine unpacks with xz -d or python's lzma).
sizes=$(for f in "$OUT"/bin/*; do echo "size_$(basename "$f")_stripped=$(stat -c %s "$f")"; done)
echo "== compressing the binaries (xz -6)"
xz -6 -T0 "$OUT"/bin/* || die "xz failed"

# 4. The manifest.
{
    echo "built=$(date -u +%FT%TZ)"
    echo "commit=$(git rev-parse HEAD)"
    echo "dirty_files=$(git status --porcelain --untracked-files=no | wc -l)"
    echo "runtime_dir=$runtime_dir"
    echo "glibc_max=$glibc_max"
    echo "fmnist_train=$FMNIST_TRAIN"
    echo "fmnist_test=$FMNIST_TEST"
    echo "dcgan64_images=$DCGAN64_IMAGES"
    echo "$sizes"
    for f in "$OUT"/bin/*.xz; do echo "size_$(basename "$f" .xz)_xz=$(stat -c %s "$f")"; done
} >"$OUT/manifest"

echo "== .gpu"
find "$OUT" -type f -printf '%10s  %p\n' | sort -k2
echo "total .gpu: $(du -sb "$OUT" | cut -f1) bytes ($(du -sh "$OUT" | cut -f1)); .gl: $(du -sh .gl 2>/dev/null | cut -f1)"
total=$(du -sb "$OUT" .gl 2>/dev/null | awk '{ s += $1 } END { print s }')
tracked=$(git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -n 1 | cut -f1)
echo "carried (.gpu + .gl): $total bytes; the rest of the tree that travels: $tracked bytes; limit 64 MiB = 67108864 in all"
((total + tracked < 60000000)) || echo "WARNING: close to or over the 64 MiB limit: lower FMNIST_TRAIN" >&2
cat "$OUT/manifest"
