# The two things a newcomer types: `make demo` and `make test`.
.PHONY: demo test check-specs lint build bench-kernels

SPECS := $(wildcard specs/*.gen)
GENC := cargo run --quiet --release --bin genc --

build:
	cargo build --release

# The main job, for now: check every model spec and confirm it is in canonical layout.
# (Training arrives with the runtime issues; then this trains specs/vae.gen.)
demo: build
	$(GENC) check $(SPECS)
	$(GENC) fmt --check $(SPECS)
	$(GENC) summary specs/dcgan.gen

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

test: lint
	cargo test --workspace

# Kernel timings on this machine (lavapipe without a GPU); see runtime/README.md. The dev
# profile already builds dependencies optimised, and shader code is compiled by the driver.
bench-kernels:
	XDG_RUNTIME_DIR=$${XDG_RUNTIME_DIR:-/tmp} cargo bench -p genc-runtime --bench kernels --profile dev
