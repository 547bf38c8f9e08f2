#!/usr/bin/env bash
# User-space instruction counts from callgrind: repeatable where wall time on a shared machine
# is not. Each figure is the difference between two runs of different length divided by the
# extra work, so start-up cancels out.
#   pipes  (n=1000 a=100 w=1000): (-r 11 minus -r 1) / 10  = instructions per round
#   timers: (-n 110000 minus -n 10000, -r 0) / 100000     = instructions per timer armed and fired
# Usage: bash benches/instructions.sh   (needs valgrind; peers appear when libevent-dev/libev-dev are installed)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is not installed (apt-get install valgrind)"; exit 1; }
cargo build --release -q -p evloop-benches
bin=target/release

instr() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

echo "pipes, n=1000 a=100 w=1000: instructions per round"
for b in epoll polling poll select raw polling-crate libevent:epoll libevent:poll libev:epoll libev:poll libev:select; do
  out=$($bin/pipes -n 1000 -a 100 -w 1000 -r 1 --backend "$b")
  if grep -q skipped <<<"$out"; then echo "  $b: $out"; continue; fi
  one=$(instr $bin/pipes -n 1000 -a 100 -w 1000 -r 1 --backend "$b")
  eleven=$(instr $bin/pipes -n 1000 -a 100 -w 1000 -r 11 --backend "$b")
  printf '  %-16s %10d\n' "$b" $(( (eleven - one) / 10 ))
done

echo "timers: instructions per timer armed and fired"
for imp in evloop libev libevent; do
  out=$($bin/timers -n 1000 -r 0 --impl "$imp")
  if grep -q skipped <<<"$out"; then echo "  $imp: $out"; continue; fi
  small=$(instr $bin/timers -n 10000 -r 0 --impl "$imp")
  large=$(instr $bin/timers -n 110000 -r 0 --impl "$imp")
  printf '  %-16s %10d\n' "$imp" $(( (large - small) / 100000 ))
done
