#!/usr/bin/env bash
# The benchmark of issue 6 (not part of the tests' pass/fail): builds the release page and the
# release emulator, then measures in headless Chromium and prints the figures beside the goals:
#  (a) key + certificate + PFX generation, (b) first-load bytes and time to first interactive
#  render, (c) add-app against the emulator with 20 s replication lag and 100 ms latency.
# Two page builds, outside the shared dist/: the product page (www/index.html, features `app`)
# into $CARGO_TARGET_DIR/bench/dist, measured in (b) and driven in (c); and the benchmark page,
# the same html with feature `bench`, which adds src/web/bench.rs (benchCredentials)
# for (a), into …/bench/bench-dist (an incremental build: only this crate is compiled again).
#
# Knobs (environment): BENCH_N (10 samples per credential row), BENCH_LOADS (5 cold loads),
# BENCH_LAG_MS (20000), BENCH_LATENCY_MS (100), BENCH_ONLY ("a,b,c"), BENCH_JSON (raw figures
# as JSON into this file), BENCH_SKIP_BUILD=1 (measure the last build again).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"
export TRUNK_SKIP_VERSION_CHECK=true
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET/bench
mkdir -p "$OUT"

build() {
  local what=$1 logf=$2
  shift 2
  local t0
  t0=$(date +%s)
  printf '[bench] %s ...\n' "$what" >&2
  if ! "$@" >"$logf" 2>&1; then
    tail -40 "$logf" >&2
    printf '[bench] %s failed (log: %s)\n' "$what" "$logf" >&2
    exit 1
  fi
  printf '[bench] %s: %d s\n' "$what" "$(($(date +%s) - t0))" >&2
}

if [ "${BENCH_SKIP_BUILD:-}" != 1 ]; then
  build "release page: trunk build --release --offline" "$OUT/trunk.log" \
    trunk build --release --offline --dist "$OUT/dist"
  if grep -qiE 'download' "$OUT/trunk.log"; then echo "[bench] trunk tried to download a tool" >&2; exit 1; fi
  # The benchmark page: www/index.html with the feature `bench`, its links pointed back at www/
  # (relative: Trunk appends an absolute href to the html's folder).
  mkdir -p "$OUT/bench-www"
  WWW=$(realpath --relative-to="$OUT/bench-www" "$ROOT/www")
  sed -e 's/data-cargo-features="app"/data-cargo-features="bench"/' \
    -e "s#href=\"\([^\"/][^\"]*\)\"#href=\"$WWW/\1\"#g" www/index.html >"$OUT/bench-www/index.html"
  grep -q 'data-cargo-features="bench"' "$OUT/bench-www/index.html" \
    || { echo "[bench] www/index.html has no data-cargo-features=\"app\" to extend" >&2; exit 1; }
  build "benchmark page: the same with feature bench" "$OUT/trunk-bench.log" \
    trunk build --release --offline --dist "$OUT/bench-dist" "$OUT/bench-www/index.html"
  build "release emulator: cargo build --release --features emulator --bin emulator" "$OUT/emulator-build.log" \
    cargo build --locked --release --features emulator --bin emulator
fi

export EMULATOR_BIN="$TARGET/release/emulator" DIST_DIR="$OUT/dist" BENCH_DIST_DIR="$OUT/bench-dist" E2E_OUT="$OUT/e2e-out"
exec node bench/bench.mjs
