#!/usr/bin/env bash
# User-space instruction counts from callgrind: repeatable where wall time on a shared machine
# is not. Each figure is the difference between two runs of different length divided by the
# extra work, so start-up cancels out.
#   pipes  (n=1000 a=100 w=1000): (-r 11 minus -r 1) / 10  = instructions per round
#   timers: (-n 110000 minus -n 10000, -r 0) / 100000     = instructions per timer armed and fired
#   rearm:  (-m 1100000 minus -m 100000) / 1000000        = instructions per re-arm of one of
#           100,000 persistent timeouts of 4 lengths
#   loop_count: (1,100,000 minus 100,000 ticks) / 1,000,000 = instructions per loop iteration
#           with one idle watcher (libuv's benchmark-loop-count.c; benches/src/loop_hooks.rs)
#   http-hello: (5,500 minus 500 requests) / 5,000        = instructions per request, one
#           keep-alive connection sending a request at a time (benches/src/bin/http_seq.rs);
#           http_async: the same responder as tasks on evloop's runtime (benches/src/bin/http_async.rs)
# Usage:
#   bash benches/instructions.sh                 every backend and peer (peers appear when
#                                                libevent-dev/libev-dev are installed)
#   bash benches/instructions.sh --gate FILE     evloop's three figures against the baseline
#                                                in FILE; exits 1 if one is more than 3 % above
# Needs valgrind (apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is not installed (apt-get install valgrind)"; exit 1; }
cargo build --release -q -p evloop-benches
cargo build --release -q --example http-hello -p evloop
bin=target/release

instr() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

pipes_round() { # backend
  local one eleven
  one=$(instr $bin/pipes -n 1000 -a 100 -w 1000 -r 1 --backend "$1")
  eleven=$(instr $bin/pipes -n 1000 -a 100 -w 1000 -r 11 --backend "$1")
  echo $(( (eleven - one) / 10 ))
}

per_timer() { # impl
  local small large
  small=$(instr $bin/timers -n 10000 -r 0 --impl "$1")
  large=$(instr $bin/timers -n 110000 -r 0 --impl "$1")
  echo $(( (large - small) / 100000 ))
}

per_rearm() { # impl
  local small large
  small=$(instr $bin/rearm -n 100000 -d 4 -m 100000 --impl "$1")
  large=$(instr $bin/rearm -n 100000 -d 4 -m 1100000 --impl "$1")
  echo $(( (large - small) / 1000000 ))
}

port=19400
served() { # requests, server binary: the server's instruction count
  port=$((port + 1))
  local out pid
  out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$2" "$port" >/dev/null 2>"$out" &
  pid=$!
  $bin/http_seq "$port" "$1" >/dev/null
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$out"
  rm -f "$out"
}

per_iteration() { # impl: evloop, libuv or libev
  local small large
  small=$(instr $bin/loop_hooks --ticks 100000 --rounds 1 --firings 0 --impl "$1")
  large=$(instr $bin/loop_hooks --ticks 1100000 --rounds 1 --firings 0 --impl "$1")
  echo $(( (large - small) / 1000000 ))
}

per_request() { # server binary
  local few many
  few=$(served 500 "$1")
  many=$(served 5500 "$1")
  echo $(( (many - few) / 5000 ))
}

if [ "${1:-}" = "--gate" ]; then
  baseline=${2:?usage: instructions.sh --gate FILE}
  declare -A now=(
    [pipes_round]=$(pipes_round epoll)
    [timer]=$(per_timer evloop)
    [rearm]=$(per_rearm evloop)
    [loop_iteration]=$(per_iteration evloop)
    [http_request]=$(per_request $bin/examples/http-hello)
    [http_async_request]=$(per_request $bin/http_async)
  )
  status=0
  printf '%-18s %10s %10s %8s\n' figure baseline now change
  while read -r name base; do
    case "$name" in ''|'#'*) continue ;; esac
    [ -n "${now[$name]:-}" ] || { echo "instructions.sh: unknown figure $name in $baseline"; exit 1; }
    change=$(awk -v a="${now[$name]}" -v b="$base" 'BEGIN { printf "%+.1f%%", (a - b) * 100 / b }')
    printf '%-18s %10d %10d %8s\n' "$name" "$base" "${now[$name]}" "$change"
    if [ $(( now[$name] * 100 )) -gt $(( base * 103 )) ]; then
      echo "!!! $name rose more than 3 % above its baseline: find the cause, or raise the baseline in a commit that says why"
      status=1
    elif [ $(( now[$name] * 100 )) -lt $(( base * 97 )) ]; then
      echo "    $name fell more than 3 %: lower its baseline in $baseline to keep the gain"
    fi
  done <"$baseline"
  exit $status
fi

echo "pipes, n=1000 a=100 w=1000: instructions per round"
for b in epoll polling poll select raw polling-crate libevent:epoll libevent:poll libev:epoll libev:poll libev:select; do
  out=$($bin/pipes -n 1000 -a 100 -w 1000 -r 1 --backend "$b")
  if grep -q skipped <<<"$out"; then echo "  $b: $out"; continue; fi
  printf '  %-16s %10d\n' "$b" "$(pipes_round "$b")"
done

echo "timers: instructions per timer armed and fired"
for imp in evloop libev libevent; do
  out=$($bin/timers -n 1000 -r 0 --impl "$imp")
  if grep -q skipped <<<"$out"; then echo "  $imp: $out"; continue; fi
  printf '  %-16s %10d\n' "$imp" "$(per_timer "$imp")"
done

echo "rearm: instructions per re-arm (100,000 persistent timeouts, 4 lengths)"
for imp in evloop libev libevent; do
  out=$($bin/rearm -n 1000 -m 1000 --impl "$imp")
  if grep -q skipped <<<"$out"; then echo "  $imp: $out"; continue; fi
  printf '  %-16s %10d\n' "$imp" "$(per_rearm "$imp")"
done

echo "loop_count: instructions per loop iteration with one idle watcher"
for imp in evloop libuv libev; do
  out=$($bin/loop_hooks --ticks 1000 --rounds 1 --firings 0 --impl "$imp")
  if grep -q skipped <<<"$out"; then echo "  $imp: $out"; continue; fi
  printf '  %-16s %10d\n' "$imp" "$(per_iteration "$imp")"
done

echo "http-hello, one connection, a request at a time: instructions per request"
cargo build --release -q --example hyper-hello -p evloop
for entry in "evloop-epoll:$bin/examples/http-hello" "evloop-async:$bin/http_async" "hyper-evloop:$bin/examples/hyper-hello" "libevent:$bin/http_libevent" "tokio:$bin/http_tokio"; do
  name=${entry%%:*} server=${entry#*:}
  if [ "$name" = libevent ] && [ "$($server --built 2>&1)" != "yes" ]; then
    echo "  libevent: skipped (libevent-dev absent at build time)"; continue
  fi
  printf '  %-16s %10d\n' "$name" "$(per_request "$server")"
done
