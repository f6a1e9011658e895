# The two things a newcomer types: `make demo` and `make test`.
.PHONY: demo test deps check-specs lint build bench-kernels bench-train classifier

SPECS := $(wildcard specs/*.gen)
GENC := cargo run --quiet --release --bin genc --

build:
	cargo build --release

# What the demo and the tests need from Debian: Fashion-MNIST, and the Vulkan loader with
# Mesa's lavapipe (the GPU kernels' tests run on it without a GPU).
deps:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] || ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist mesa-vulkan-drivers libvulkan1; \
	fi

# The main job: check every spec, then train the VAE on Fashion-MNIST for a few minutes on
# the host CPU (or a GPU when there is one), leaving metrics, sample grids, a loss plot and a
# checkpoint in runs/vae-demo.
demo: deps build
	$(GENC) check $(SPECS)
	$(GENC) summary specs/vae.gen
	XDG_RUNTIME_DIR=$${XDG_RUNTIME_DIR:-/tmp} $(GENC) train specs/vae.gen --set steps=3000 --out runs/vae-demo

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

test: deps lint
	XDG_RUNTIME_DIR=$${XDG_RUNTIME_DIR:-/tmp} cargo test --workspace

# Kernel timings on each device (BENCH_DEVICES, default "cpu vulkan-cpu": the host device and
# lavapipe without a GPU); see runtime/README.md. Release build: the host device's kernels
# are genc's own code.
bench-kernels:
	XDG_RUNTIME_DIR=$${XDG_RUNTIME_DIR:-/tmp} cargo bench -p genc-runtime --bench kernels

# Training steps/s of genc against the same models in PyTorch on this machine (bench/train.sh;
# PyTorch from /tmp/torchenv, see the script). `make bench-train N=100 MODELS="vae dcgan"`.
bench-train:
	bench/train.sh $(or $(N),200) $(MODELS)

# The Fashion-MNIST classifier whose features genc's sample metrics compare: trained from
# specs/fmnist_classifier.gen, its weights (no optimizer state) shipped in assets/.
classifier: deps build
	XDG_RUNTIME_DIR=$${XDG_RUNTIME_DIR:-/tmp} $(GENC) train specs/fmnist_classifier.gen --out runs/fmnist-classifier
	$(GENC) weights runs/fmnist-classifier --out assets/fmnist_classifier.safetensors
