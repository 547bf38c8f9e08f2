#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 10) each. Needs the nightly toolchain, which
# this machine has, and cargo-fuzz (installed here if missing). Crashes land in
# fuzz/artifacts/<target>/; turn each into a regression test before fixing it.
#   bash fuzz/run.sh            # 10 s per target
#   SECONDS_PER_TARGET=60 bash fuzz/run.sh
set -euo pipefail
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
secs=${SECONDS_PER_TARGET:-10}
for target in buffer_ops buffer_lines base_ops; do
  echo "== $target ($secs s)"
  cargo +nightly fuzz run -O "$target" -- -max_total_time="$secs" 2>&1 | grep -E "^Done|ERROR|panicked" || true
done
