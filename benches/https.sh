#!/usr/bin/env bash
# The https-hello load comparison, in one sitting: evloop's https-hello example (rustls on
# ring over buffered sockets) on each backend, libevent 2.1's bufferevent_openssl (OpenSSL 3,
# benches/peers/https_libevent.c) and tokio + tokio-rustls (ring), each under
# `wrk -t1 -c100 -d5s` over HTTPS keep-alive, with one certificate (ECDSA P-256, made here by
# openssl) for all. Prints req/s, the ratio to libevent, the server's CPU time per request,
# and the cipher suite each negotiated with wrk. Also handshake rates: `wrk -t1 -c50` with
# `Connection: close`, so each request is a new connection and a full handshake (connections
# per second, and server CPU per connection), and `openssl s_time -new` (one connection at a
# time, handshake and close only) for 5 s.
# Needs wrk, openssl and libevent-dev (its openssl part) with libssl-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in wrk openssl cc; do
  command -v "$tool" >/dev/null || { echo "https.sh: $tool is not installed"; exit 1; }
done
cargo build --release -q --example https-hello -p evloop
cargo build --release -q -p evloop-benches --bin https_tokio
dur=${DURATION:-5s}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
have_libevent=0
if [ -f /usr/include/event2/bufferevent_ssl.h ] && [ -f /usr/include/openssl/ssl.h ] \
  && cc -O2 benches/peers/https_libevent.c -o "$work/https_libevent" \
       -levent -levent_openssl -lssl -lcrypto 2>"$work/cc.err"; then
  have_libevent=1
else
  echo "https.sh: libevent-openssl peer not built (needs libevent-dev and libssl-dev):"
  cat "$work/cc.err" 2>/dev/null || true
fi

declare -A rps cpu hs suite cps ccpu
ticks=$(getconf CLK_TCK)
port=18280
run() { # name, env, command...
  local name=$1 envs=$2; shift 2
  port=$((port + 1))
  env $envs "$@" "$port" "$work/cert.pem" "$work/key.pem" 2>/dev/null &
  local pid=$!
  sleep 0.5
  local out
  out=$(wrk -t1 -c100 -d"$dur" "https://127.0.0.1:$port/" 2>/dev/null)
  rps["$name"]=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  local requests used
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  used=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
  cpu["$name"]=$(awk -v t="$used" -v hz="$ticks" -v n="$requests" \
    'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "-" }')
  out=$(wrk -t1 -c50 -d"$dur" -H "Connection: close" "https://127.0.0.1:$port/" 2>/dev/null)
  cps["$name"]=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  local conns used2
  conns=$(awk '/requests in/ {print $1}' <<<"$out")
  used2=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
  ccpu["$name"]=$(awk -v t="$((used2 - used))" -v hz="$ticks" -v n="$conns" \
    'BEGIN { if (n > 0) printf "%.0f", t / hz * 1e6 / n; else print "-" }')
  suite["$name"]=$(openssl s_client -connect "127.0.0.1:$port" </dev/null 2>/dev/null \
    | awk '/Cipher is/ {print $NF; exit}' || true)
  hs["$name"]=$(timeout 30 openssl s_time -connect "127.0.0.1:$port" -new -time 5 2>/dev/null \
    | awk '/connections in .* real seconds/ {printf "%.0f", $1 / $4}' || true)
  kill -INT $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
}

run "evloop-epoll" "" target/release/examples/https-hello
run "evloop-poll" "EVENT_NOEPOLL=1" target/release/examples/https-hello
[ "$have_libevent" = 1 ] && run "libevent-openssl" "" "$work/https_libevent"
run "tokio-rustls" "" target/release/https_tokio

printf '%-18s %12s %10s %12s %12s %10s %12s %14s  %s\n' server "c100 req/s" "/libevent" "CPU us/req" \
  "new conn/s" "/libevent" "CPU us/conn" "s_time conn/s" "cipher"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
for name in evloop-epoll evloop-poll libevent-openssl tokio-rustls; do
  [ -n "${rps[$name]:-}" ] || continue
  q=$(ratio "${rps[$name]}" "${rps[libevent-openssl]:-0}")
  qc=$(ratio "${cps[$name]:-0}" "${cps[libevent-openssl]:-0}")
  printf '%-18s %12s %10s %12s %12s %10s %12s %14s  %s\n' "$name" "${rps[$name]}" "$q" "${cpu[$name]}" \
    "${cps[$name]:--}" "$qc" "${ccpu[$name]:--}" "${hs[$name]:--}" "${suite[$name]:--}"
done
