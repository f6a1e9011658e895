# The two things a newcomer types: `make demo` and `make test`.
.PHONY: demo test check-specs lint build bench-kernels bench-train

SPECS := $(wildcard specs/*.gen)
GENC := cargo run --quiet --release --bin genc --

build:
	cargo build --release

# The main job: check every spec, then train the VAE on Fashion-MNIST for a few minutes on
# lavapipe (or a GPU), leaving metrics, sample grids, a loss plot and a checkpoint in runs/vae-demo.
demo: build
	@ls /usr/share/datasets/fashion-mnist >/dev/null 2>&1 || sudo apt-get install -y dataset-fashion-mnist mesa-vulkan-drivers libvulkan1 || apt-get install -y dataset-fashion-mnist mesa-vulkan-drivers libvulkan1
	$(GENC) check $(SPECS)
	$(GENC) summary specs/vae.gen
	XDG_RUNTIME_DIR=$${XDG_RUNTIME_DIR:-/tmp} $(GENC) train specs/vae.gen --set steps=3000 --out runs/vae-demo

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

test: lint
	cargo test --workspace

# Kernel timings on this machine (lavapipe without a GPU); see runtime/README.md. The dev
# profile already builds dependencies optimised, and shader code is compiled by the driver.
bench-kernels:
	XDG_RUNTIME_DIR=$${XDG_RUNTIME_DIR:-/tmp} cargo bench -p genc-runtime --bench kernels --profile dev

# Training steps/s of genc against the same models in PyTorch on this machine (bench/train.sh;
# PyTorch from /tmp/torchenv, see the script). `make bench-train N=100 MODELS="vae dcgan"`.
bench-train:
	bench/train.sh $(or $(N),200) $(MODELS)
