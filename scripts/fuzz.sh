#!/usr/bin/env bash
# Fuzzing (issue 7): runs each cargo-fuzz target in fuzz/ for a while with libFuzzer.
#   scripts/fuzz.sh                 every target, 60 s each
#   scripts/fuzz.sh 600 redirect    one target, 10 minutes
# Not part of the test command (it runs until its time is up); the property tests
# (tests/prop_*.rs) run the same invariants (tests/invariants) on every `cargo test`.
# A crash leaves its input in fuzz/artifacts/<target>/; turn it into a regression test beside the
# code it breaks, then fix.
#
# cargo-fuzz wants a nightly compiler for its -Z flags; this machine has only the stable toolchain,
# so RUSTC_BOOTSTRAP=1 unlocks them, and the sanitizer is off (the engine is safe Rust: libFuzzer's
# coverage guidance and the invariants' panics are what find bugs here).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(redirect properties graph_response driver pkcs12 pfx_read)

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "[fuzz] cargo install cargo-fuzz (about 2 minutes)" >&2
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
export RUSTC_BOOTSTRAP=1
cd fuzz
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t"
  echo "==== $t: ${SECONDS_EACH} s ====" >&2
  cargo fuzz run --sanitizer none "$t" "corpus/$t" -- \
    -max_total_time="$SECONDS_EACH" -max_len=8192 -timeout=30 -print_final_stats=1 2>&1 \
    | grep -E '^(#[0-9]+.*(DONE|pulse)|stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|panicked|artifact_prefix|Test unit written)' || true
  if ls "artifacts/$t"/crash-* >/dev/null 2>&1; then
    echo "[fuzz] $t: crash inputs in fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
