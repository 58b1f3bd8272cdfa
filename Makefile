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

## test: lints, one build, the default models, then the unit tests (fast) and the integration tests (slow)
test: setup
	$(CARGO) fmt --all -- --check
	$(LINTED) $(CARGO) build --locked --workspace --all-targets
	$(DEBUG_BIN) models fetch
	$(DEBUG_BIN) models fetch kokoro-82m kokoro-voices-ja whisper-base  # the tests also cover Kokoro and the multilingual recogniser
	$(call tests,kind(lib) | kind(bin),--lib --bins)
	$(call tests,not (kind(lib) | kind(bin)),--test '*')

# The workspace's own crates are compiled by clippy-driver, which is rustc with clippy's lints, so one
# build both lints them (-D warnings) and makes the test binaries; `cargo clippy` would compile every
# dependency again in check mode (12 to 20 minutes cold on two cores). Dependencies are compiled by rustc
# as usual. The test runs below carry the same variables, or cargo would rebuild the workspace crates.
LINTED := RUSTC_WORKSPACE_WRAPPER=clippy-driver CLIPPY_ARGS=-Dwarnings__CLIPPY_HACKERY__

# $(call tests,NEXTEST_FILTER,CARGO_TEST_TARGETS): nextest where installed, else cargo test.
define tests
	if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(LINTED) $(CARGO) nextest run --locked --workspace --no-fail-fast -E '$(1)'; \
	else \
		$(LINTED) $(CARGO) test --locked --workspace --no-fail-fast $(2); \
	fi
endef

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
