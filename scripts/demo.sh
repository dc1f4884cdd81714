#!/usr/bin/env bash
# README command 1: set up what is missing, build the page, and serve it against the built-in
# emulated tenant. Prints the page's URL on a line of its own. Ctrl-C stops it.
# Options (environment): PAGE_PORT (8080), EMULATOR_PORT (8400), LAG_MS (replication lag, 3000).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"
export TRUNK_SKIP_VERSION_CHECK=true
PAGE_PORT=${PAGE_PORT:-8080}
EMULATOR_PORT=${EMULATOR_PORT:-8400}
LAG_MS=${LAG_MS:-3000}
echo "[demo] building the page (trunk build --release) and the emulator…" >&2
trunk build --release --offline >&2
cargo build --locked --release --features emulator --bin emulator >&2
exec target/release/emulator --host 127.0.0.1 --port "$EMULATOR_PORT" \
  --page-dir dist --page-port "$PAGE_PORT" \
  --lag-app-ms "$LAG_MS" --lag-sp-ms "$LAG_MS"
