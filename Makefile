# The two commands of the README: `make run` and `make test`. Everything else here serves them.
#
# CARGO_TARGET_DIR and MODELS_DIR are honoured: point them at directories outside the clone to share
# one build and one model download between clones (CI does).

CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
RELEASE_BIN := $(TARGET_DIR)/release/switchboard
DEBUG_BIN := $(TARGET_DIR)/debug/switchboard

.PHONY: run test setup build models lint fmt clean fuzz

## run: install what is missing, fetch the default models, build in release mode, serve on :8000
run: setup build models
	$(RELEASE_BIN) serve

## test: build once, fetch the default models, then run lints and every test
test: setup
	$(CARGO) build --locked --workspace --all-targets
	$(DEBUG_BIN) models fetch
	$(DEBUG_BIN) models fetch kokoro-82m kokoro-voices-ja  # the voice tests also cover Kokoro
	$(MAKE) --no-print-directory lint
	if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --locked --workspace --no-fail-fast; \
	else \
		$(CARGO) test --locked --workspace --no-fail-fast; \
	fi

setup:
	@scripts/setup.sh

build:
	$(CARGO) build --locked --release -p switchboard

models: build
	$(RELEASE_BIN) models fetch

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## fuzz: run every wire decoder's fuzz target for FUZZ_SECONDS each (needs `cargo install cargo-fuzz`)
FUZZ_SECONDS ?= 60
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

clean:
	$(CARGO) clean
