#!/bin/bash
# CPU per small request of two portico checkouts, interleaved on the same machine: the before/after
# figure for a change to the per-request path (bench/run.mjs measures one checkout at a time).
#   bench/cpu-ab.sh BEFORE_DIR AFTER_DIR [v1|v2] [connections] [rounds]
# Each DIR is a built checkout (npm run build). Per round and checkout: portico serving
# bench/plugins/v1 or v2 with its access log on (to a file), wrk 2 s warm-up then 5 s; prints
# req/s and the daemon's and the plugin's CPU time per request (from /proc/PID/stat). Loopback only.
set -eu
A=$1 B=$2 PROTO=${3:-v1} CONNS=${4:-64} ROUNDS=${5:-3}
command -v wrk >/dev/null || { echo "needs wrk (Debian package wrk)" >&2; exit 1; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
run() {
  local dir=$1 port=$((40000 + RANDOM % 2000)) tmp
  tmp=$(mktemp -d)
  (cd "$dir" && exec node bin/portico.js serve --plugins "bench/plugins/$PROTO" --listen "127.0.0.1:$port" --log-level info >"$tmp/log" 2>"$tmp/err") &
  local gw=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/$PROTO/small" >/dev/null && break; sleep 0.2; done
  local pl
  pl=$(pgrep -P "$gw" | head -1)
  wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$port/$PROTO/small" >/dev/null
  local g1 p1 g2 p2 r
  g1=$(ticks "$gw"); p1=$(ticks "$pl")
  r=$(wrk -t1 -c"$CONNS" -d5s "http://127.0.0.1:$port/$PROTO/small" | awk '/Requests\/sec/{print $2}')
  g2=$(ticks "$gw"); p2=$(ticks "$pl")
  kill "$gw"; wait "$gw" 2>/dev/null || true
  rm -rf "$tmp"
  awk -v n="$dir" -v r="$r" -v g=$((g2 - g1)) -v p=$((p2 - p1)) -v hz="$(getconf CLK_TCK)" \
    'BEGIN{printf "%-28s %8.0f req/s  daemon %6.1f µs/req  plugin %6.1f µs/req\n", n, r, g*1e6/hz/(r*5), p*1e6/hz/(r*5)}'
}
for i in $(seq "$ROUNDS"); do run "$A"; run "$B"; done
