#!/usr/bin/env bash
# README command 2: set up what is missing, then run every check and test. Fails on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"
export TRUNK_SKIP_VERSION_CHECK=true
export CHROMEDRIVER=/usr/bin/chromedriver
export WASM_BINDGEN_TEST_TIMEOUT=120
SUMMARY=()
stage() { printf '\n==== %s ====\n' "$*"; }
t0=$(date +%s)

stage "format"
cargo fmt --all -- --check
SUMMARY+=("fmt: clean")

stage "clippy (native, with the emulator)"
cargo clippy --locked --all-targets --features emulator -- -D warnings
stage "clippy (wasm32, the page)"
cargo clippy --locked --target wasm32-unknown-unknown --lib --test 'wasm_*' --features app -- -D warnings
SUMMARY+=("clippy: clean on x86_64 and wasm32")

stage "native tests: engine, emulator, flows, real peers (OpenSSL, Java, Python)"
cargo test --locked --features emulator 2>&1 | tee target/native-tests.log
native=$(grep -E '^test result:' target/native-tests.log | awk '{p+=$4; f+=$6; i+=$8} END {printf "%d passed, %d failed, %d ignored", p, f, i}')
SUMMARY+=("native cargo test: $native")

stage "wasm tests in headless Chromium (wasm-bindgen-test)"
cargo test --locked --target wasm32-unknown-unknown --test 'wasm_*' 2>&1 | tee target/wasm-tests.log
wasm=$(grep -E '^test result:' target/wasm-tests.log | awk '{p+=$4; f+=$6; i+=$8} END {printf "%d passed, %d failed, %d ignored", p, f, i}')
SUMMARY+=("wasm cargo test: $wasm")

stage "release build of the page (trunk, offline: no downloads)"
trunk build --release --offline 2>&1 | tee target/trunk.log
# Trunk must have used the pinned binaries on PATH, never a download.
if grep -qiE 'download' target/trunk.log; then echo "trunk tried to download a tool" >&2; exit 1; fi
cargo build --locked --features emulator --bin emulator

stage "page size budget"
node tests/e2e/size.mjs --check
SUMMARY+=("size: $(node tests/e2e/size.mjs --total)")

stage "end-to-end in headless Chromium against the emulator"
node --test --test-concurrency=1 tests/e2e/ 2>&1 | tee target/e2e.log
e2e=$(grep -E '^# (pass|fail)' target/e2e.log | awk '{a[$2]=$3} END {printf "%d passed, %d failed", a["pass"], a["fail"]}')
SUMMARY+=("e2e: $e2e")

stage "summary ($(( $(date +%s) - t0 )) s)"
printf '%s\n' "${SUMMARY[@]}"
# One closing line over every runner (cargo test native + wasm, node --test).
printf '%s\n' "${SUMMARY[@]}" | awk '/passed/ {for (i = 1; i <= NF; i++) {if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i}} END {printf "total: %d passed, %d failed\n", p, f}'
