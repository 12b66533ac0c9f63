#!/usr/bin/env bash
# Concurrency-1 latency of pass-through JSON, interleaved: nginx and
# modelgate, each as it comes and each with its connections never
# recycled, run after one another in a rotating order, ROUNDS times, and
# the median of each one's p50s (and means). The bench's concurrency-1
# column moves by more between rounds than the proxies differ; many short
# interleaved runs see every target in the same machine state.
#
#   bench/c1.sh [ROUNDS] [SECONDS]      (defaults: 9 rounds of 3 s)
#
# TICK=1 keeps every core's scheduler tick running meanwhile (a process on
# each core sleeps 2 ms at a time, so a timer is always due within a
# tick), which takes the cost of restarting a stopped tick out of every
# wake-up: what remains is the proxies' own part. Needs nginx, wrk, python3
# and release builds of `gateway-http` and `fast-upstream`:
#   cargo build --release -p gateway-http -p fast-upstream
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
rounds=${1:-9}
seconds=${2:-3}
dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

target/release/fast-upstream serve --chunks 20 >"$dir/upstream.log" 2>&1 &
pids+=($!)
upstream=$(after_marker "$dir/upstream.log" "listening on http://")

# NAME EXTRA: an nginx as the bench runs it, with EXTRA directives in its
# `http` and `upstream` blocks; its address goes into `started`.
start_nginx() {
  local name=$1 extra=$2 port
  port=$(free_port)
  mkdir -p "$dir/$name/body" "$dir/$name/proxy"
  cat >"$dir/$name/nginx.conf" <<NGINX
worker_processes 2; pid $dir/$name/nginx.pid; error_log $dir/$name/error.log warn; daemon off;
events { worker_connections 8192; }
http {
  access_log off; client_body_temp_path $dir/$name/body; proxy_temp_path $dir/$name/proxy; $extra
  upstream up { server $upstream; keepalive 256; $extra }
  server { listen 127.0.0.1:$port; location / {
    proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";
    proxy_buffering off; proxy_request_buffering off; } }
}
NGINX
  nginx -p "$dir/$name" -c "$dir/$name/nginx.conf" &
  pids+=($!)
  for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  started="127.0.0.1:$port"
}

# NAME EXTRA: a modelgate in front of the upstream, with EXTRA lines in
# its `[server]` section; its address goes into `started`.
start_modelgate() {
  local name=$1 extra=$2
  cat >"$dir/$name.toml" <<TOML
[server]
listen = "127.0.0.1:0"
$extra

[[backends]]
id = "fast"
dialect = "openai"
endpoint = "http://$upstream/v1"
models = [{ id = "gpt" }]

[aliases]
default = "fast/gpt"
TOML
  MODELGATE_LOG=error target/release/modelgate --config "$dir/$name.toml" >"$dir/$name.log" 2>&1 &
  pids+=($!)
  started=$(after_marker "$dir/$name.log" "listening on http://")
}

declare -A url script
start_nginx nginx ""
url[nginx]="http://$started/v1/chat/completions"
start_nginx nginx-keep "keepalive_requests 10000000;"
url[nginx-keep]="http://$started/v1/chat/completions"
start_modelgate modelgate ""
url[modelgate]="http://$started/v1/chat/completions"
start_modelgate modelgate-keep "keepalive_requests = 10000000"
url[modelgate-keep]="http://$started/v1/chat/completions"

for model in gpt fast/gpt; do
  cat >"$dir/${model//\//-}.lua" <<LUA
wrk.method = "POST"
wrk.body = [==[{"model":"$model","messages":[{"role":"user","content":"Say something for the benchmark."}],"stream":false}]==]
wrk.headers["Content-Type"] = "application/json"
LUA
done
script[nginx]=gpt script[nginx-keep]=gpt script[modelgate]=fast-gpt script[modelgate-keep]=fast-gpt

if [ "${TICK:-0}" = 1 ]; then
  for core in $(seq 0 $(($(nproc) - 1))); do
    python3 -c "import os, time
os.sched_setaffinity(0, {$core})
while True: time.sleep(0.002)" &
    pids+=($!)
  done
fi

targets=(nginx nginx-keep modelgate modelgate-keep)
for round in $(seq "$rounds"); do
  for step in $(seq 0 3); do
    target=${targets[$(((round + step) % 4))]}
    wrk -t1 -c1 -d"${seconds}s" --latency -s "$dir/${script[$target]}.lua" "${url[$target]}" \
      | awk -v target="$target" '/Latency/ && !mean { mean = $2 } / 50%/ { p50 = $2 }
          /Non-2xx/ { bad = 1 }
          END { if (bad) { print "non-2xx answers from " target > "/dev/stderr"; exit 1 }
                print target, p50, mean }' >>"$dir/runs"
  done
done

echo "p50 and mean at concurrency 1, medians of $rounds rounds of ${seconds} s (µs; -keep: never recycles a connection)"
python3 - "$dir/runs" <<'PY'
import statistics, sys

def micros(text):
    """wrk's figure ("89.00us", "1.02ms") in µs."""
    for unit, scale in (("us", 1), ("ms", 1e3), ("s", 1e6)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * scale
    raise ValueError(text)

runs = {}
for line in open(sys.argv[1]):
    target, p50, mean = line.split()
    runs.setdefault(target, []).append((micros(p50), micros(mean)))
for target in ("nginx", "nginx-keep", "modelgate", "modelgate-keep"):
    figures = runs[target]
    p50s = [p50 for p50, _ in figures]
    means = [mean for _, mean in figures]
    print(f"{target:15} p50 {statistics.median(p50s):6.1f}   mean {statistics.median(means):6.1f}   p50s {p50s}")
PY
