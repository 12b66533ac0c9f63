#!/usr/bin/env bash
# Instructions per request of one bench case, counted by callgrind: steady to
# about 0.3% for the same binary, whatever else the machine is doing, so it
# judges a change where the wall-clock bench cannot.
#
#   bench/callgrind.sh [CASE] [SECONDS] [BINARY]
#
# CASE: pt (pass-through), pts (pass-through stream), tr (translated OpenAI ->
# Anthropic), trs (translated stream), apt (Anthropic's Messages passed
# through to an Anthropic backend); default pt. SECONDS of load after a
# warm-up (default 3). BINARY defaults to target/release/modelgate, which
# must be built (with fast-upstream) first:
#   cargo build --release -p gateway-http -p fast-upstream
# CONNS sets wrk's connections (default 8; CONNS=1 shows what a lone client
# costs, the runtime's parking included). PROMPT_KIB pads the prompt to
# that many KiB of plain text (default: one short sentence), to see what
# the gateway spends per byte of a long prompt. Needs valgrind and wrk.
# Leaves callgrind.out.* in $OUT (default a temp dir) for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
case_name=${1:-pt}
seconds=${2:-3}
binary=${3:-target/release/modelgate}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

path=/v1/chat/completions
fields="" header=""
case $case_name in
  pt) model=fast/gpt stream=false ;;
  pts) model=fast/gpt stream=true ;;
  tr) model=fastan/claude stream=false ;;
  trs) model=fastan/claude stream=true ;;
  apt)
    model=fastan/claude stream=false path=/v1/messages fields='"max_tokens":64,'
    header='wrk.headers["anthropic-version"] = "2023-06-01"'
    ;;
  *) echo "unknown case $case_name (pt, pts, tr, trs, apt)" >&2; exit 2 ;;
esac

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

target/release/fast-upstream serve --chunks 20 >"$out/upstream.log" 2>&1 &
pids+=($!)
upstream=$(after_marker "$out/upstream.log" "listening on http://")

cat >"$out/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:0"

[[backends]]
id = "fast"
dialect = "openai"
endpoint = "http://$upstream/v1"
models = [{ id = "gpt" }]

[[backends]]
id = "fastan"
dialect = "anthropic"
endpoint = "http://$upstream"
models = [{ id = "claude" }]

[aliases]
default = "fast/gpt"
TOML

padding=""
if [ -n "${PROMPT_KIB:-}" ]; then
  padding=$(head -c $((PROMPT_KIB * 1024)) < <(yes "lorem ipsum dolor sit amet," | tr '\n' ' '))
fi
cat >"$out/post.lua" <<LUA
wrk.method = "POST"
wrk.body = [==[{"model":"$model",$fields"messages":[{"role":"user","content":"Say something for the benchmark. $padding"}],"stream":$stream}]==]
wrk.headers["Content-Type"] = "application/json"
$header
wrk.headers["Authorization"] = "Bearer bench"
LUA

MODELGATE_LOG=error valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.%p" \
  "$binary" --config "$out/gateway.toml" >"$out/gateway.log" 2>"$out/valgrind.log" &
gateway_pid=$!
pids+=($gateway_pid)
gateway=$(after_marker "$out/gateway.log" "modelgate listening on http://")
url="http://$gateway$path"

wrk -t1 -c"${CONNS:-8}" -d2s -s "$out/post.lua" "$url" >/dev/null
callgrind_control -z "$gateway_pid" >/dev/null
wrk -t1 -c"${CONNS:-8}" -d"${seconds}s" -s "$out/post.lua" "$url" >"$out/wrk.log"
requests=$(awk '/requests in/ {print $1}' "$out/wrk.log")
callgrind_control -d "$gateway_pid" >/dev/null
# The dump after zeroing holds the loaded interval only; sum its threads.
# Only this run's gateway: an OUT used before holds other runs' dumps.
total=0
for file in "$out"/callgrind.out."$gateway_pid".1*; do
  ir=$(awk '/^summary:/ {print $2}' "$file")
  total=$((total + ${ir:-0}))
done
echo "case=$case_name requests=$requests Ir=$total Ir/request=$((total / requests)) out=$out"
# A count over answers that were errors measures the wrong path.
if grep -q "Non-2xx" "$out/wrk.log"; then
  grep "Non-2xx" "$out/wrk.log" >&2
  exit 1
fi
