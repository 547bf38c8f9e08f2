#!/usr/bin/env bash
# Files without copies, measured: evloop's serve-file example sends a 1 GiB file to 10 curl
# clients at once (10 GiB in all), once with sendfile (the default) and once with `--copy`
# (the same file segments, read a piece at a time and written from memory), on epoll and on
# poll. Prints the wall time, the throughput, and the server's CPU time (user + system, from
# /proc) for each, and the sendfile path's CPU as a fraction of the copying path's. Each
# client's byte count is checked. Needs curl.
#
# Where the clients are matters. Over loopback, the kernel runs the receiving side's TCP
# processing inside the sender's send call, charged to the server, and that dominates both
# paths (perf: most of the server's time under tcp_write_xmit's softirq), hiding what sendfile
# saves. So, run as root with ethtool, the clients sit in a network namespace behind a veth
# pair whose receive side is a threaded NAPI (GRO on, `threaded` 1): receiving then happens in
# a kernel thread, as it would on another machine, and the server's CPU is its own. Otherwise
# (or with LOOPBACK=1) loopback, said in the output.
# SIZE (default 1024, MiB) and CLIENTS (default 10) override the workload.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v curl >/dev/null || { echo "serve-file.sh: curl is not installed"; exit 1; }
cargo build --release -q --example serve-file -p evloop
size_mib=${SIZE:-1024}
clients=${CLIENTS:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c "$((size_mib << 20))" /dev/urandom >"$work/file"
cat "$work/file" >/dev/null # in the page cache for every run alike
ticks=$(getconf CLK_TCK)
port=18380
host=127.0.0.1
client=()
ns=evloop-bench-$$
if [ "${LOOPBACK:-0}" = 0 ] && [ "$(id -u)" = 0 ] && command -v ethtool >/dev/null \
  && ip netns add "$ns" 2>/dev/null; then
  trap 'rm -rf "$work"; ip link del evb0-$$ 2>/dev/null; ip netns del "$ns" 2>/dev/null' EXIT
  ip link add "evb0-$$" type veth peer name "evb1-$$"
  ip link set "evb1-$$" netns "$ns"
  ip addr add 10.77.0.1/24 dev "evb0-$$"
  ip link set "evb0-$$" up
  ip netns exec "$ns" ip addr add 10.77.0.2/24 dev "evb1-$$"
  ip netns exec "$ns" ip link set "evb1-$$" up
  for side in "" "ip netns exec $ns"; do
    dev=evb0-$$; [ -n "$side" ] && dev=evb1-$$
    $side ethtool -K "$dev" gro on >/dev/null
    $side sh -c "echo 1 > /sys/class/net/$dev/threaded"
  done
  host=10.77.0.1
  client=(ip netns exec "$ns")
  echo "serve-file.sh: clients behind a veth pair (threaded NAPI receive), server on $host"
else
  echo "serve-file.sh: clients over loopback (their TCP receive work is charged to the server)"
fi
declare -A cpu wall
run() { # name, env, serve-file arguments...
  local name=$1 envs=$2; shift 2
  port=$((port + 1))
  env $envs target/release/examples/serve-file "$@" "$work/file" "$host:$port" 2>/dev/null &
  local pid=$!
  sleep 0.5
  local start end i bad=0
  start=$(date +%s.%N)
  for i in $(seq "$clients"); do
    "${client[@]}" curl -s -o /dev/null -w '%{size_download}\n' "http://$host:$port/" \
      >"$work/got.$i" &
  done
  wait $(jobs -p | grep -v "^$pid\$") 2>/dev/null || true
  end=$(date +%s.%N)
  for i in $(seq "$clients"); do
    [ "$(cat "$work/got.$i")" = "$((size_mib << 20))" ] || bad=1
  done
  [ "$bad" = 0 ] || { echo "serve-file.sh: $name: a client got the wrong byte count"; exit 1; }
  cpu["$name"]=$(awk -v hz="$ticks" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$pid/stat")
  wall["$name"]=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
  kill -INT $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
}
run sendfile-epoll ""
run copy-epoll "" --copy
run sendfile-poll "EVENT_NOEPOLL=1"
run copy-poll "EVENT_NOEPOLL=1" --copy

total_mib=$((size_mib * clients))
printf '%-16s %8s %10s %14s %16s\n' server "wall s" "MiB/s" "server CPU s" "CPU / copying"
for name in sendfile-epoll copy-epoll sendfile-poll copy-poll; do
  copy=${name/sendfile/copy}
  printf '%-16s %8s %10s %14s %16s\n' "$name" "${wall[$name]}" \
    "$(awk -v t="$total_mib" -v w="${wall[$name]}" 'BEGIN { printf "%.0f", t / w }')" \
    "${cpu[$name]}" \
    "$(awk -v a="${cpu[$name]}" -v b="${cpu[$copy]}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
done
