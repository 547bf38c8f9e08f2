#!/usr/bin/env bash
# The http-hello load comparison, in one sitting: evloop's http-hello example on each backend,
# the same responder on libevent's bufferevent (C) and on tokio's current-thread runtime,
# each under `wrk -t1 -c100 -d5s` and `-c1000`. Prints req/s and the ratio of each to the
# libevent responder. Needs wrk (apt-get install wrk); DURATION=5s by default;
# INSTRUCTIONS=1 adds user-space instructions per request (needs valgrind).
# With two cores, one wrk thread can be the bottleneck, which pulls every req/s towards wrk's
# own limit; the last column is therefore the server's CPU time (user + system, from
# /proc/PID/stat) per request over both runs, which does not depend on who waits for whom.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "http.sh: wrk is not installed (apt-get install wrk)"; exit 1; }
cargo build --release -q --example http-hello -p evloop
cargo build --release -q -p evloop-benches --bin http_libevent --bin http_tokio --bin http_async
cargo build --release -q --example hyper-hello -p evloop
dur=${DURATION:-5s}
port=18180

declare -A rps cpu
ticks=$(getconf CLK_TCK)
run() { # name, env, command...
  local name=$1 envs=$2; shift 2
  port=$((port + 1))
  env $envs "$@" "$port" 2>/dev/null &
  local pid=$!
  sleep 0.5
  local requests=0 out
  for c in 100 1000; do
    out=$(wrk -t1 -c$c -d"$dur" "http://127.0.0.1:$port/" 2>/dev/null)
    rps["$name,$c"]=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    requests=$((requests + $(awk '/requests in/ {print $1}' <<<"$out")))
  done
  local used
  used=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
  cpu["$name"]=$(awk -v t="$used" -v hz="$ticks" -v n="$requests" \
    'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "-" }')
  kill -INT $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
}

run "evloop-epoll" "" target/release/examples/http-hello
run "evloop-poll" "EVENT_NOEPOLL=1" target/release/examples/http-hello
run "evloop-select" "EVENT_NOEPOLL=1 EVENT_NOPOLL=1" target/release/examples/http-hello
if [ "$(target/release/http_libevent --built 2>&1)" != "yes" ]; then
  echo "http.sh: libevent peer not built (install libevent-dev and rebuild)"
else
  run "libevent" "" target/release/http_libevent
fi
run "tokio" "" target/release/http_tokio
run "evloop-async" "" target/release/http_async
run "hyper-evloop" "" target/release/examples/hyper-hello

printf '%-16s %12s %12s %10s %10s %12s\n' server "c100 req/s" "c1000 req/s" "/libevent" "/libevent" "CPU us/req"
for name in evloop-epoll evloop-poll evloop-select libevent tokio evloop-async hyper-evloop; do
  [ -n "${rps[$name,100]:-}" ] || continue
  r100=${rps[$name,100]}; r1000=${rps[$name,1000]}
  b100=${rps[libevent,100]:-0}; b1000=${rps[libevent,1000]:-0}
  q1=$(awk -v a="$r100" -v b="$b100" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
  q2=$(awk -v a="$r1000" -v b="$b1000" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
  printf '%-16s %12s %12s %10s %10s %12s\n' "$name" "$r100" "$r1000" "$q1" "$q2" "${cpu[$name]}"
done

# INSTRUCTIONS=1: also count each server's user-space instructions per request under callgrind
# (wrk -c50 for 4 s; start-up is included but small against ~100k requests).
if [ "${INSTRUCTIONS:-0}" = 1 ] && command -v valgrind >/dev/null; then
  echo
  printf '%-16s %14s\n' server "instr/request"
  for entry in "evloop-epoll:target/release/examples/http-hello" "evloop-async:target/release/http_async" "libevent:target/release/http_libevent" "tokio:target/release/http_tokio"; do
    name=${entry%%:*}; bin=${entry#*:}
    [ "$name" = libevent ] && [ "$($bin --built 2>&1)" != "yes" ] && continue
    port=$((port + 1))
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$port" >/dev/null 2>/tmp/http-instr.$$ &
    pid=$!
    sleep 2
    n=$(wrk -t1 -c50 -d4s "http://127.0.0.1:$port/" 2>/dev/null | awk '/requests in/ {print $1}')
    kill -INT $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    c=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' /tmp/http-instr.$$)
    rm -f /tmp/http-instr.$$
    printf '%-16s %14s\n' "$name" "$(( ${c:-0} / ${n:-1} ))"
  done
fi
