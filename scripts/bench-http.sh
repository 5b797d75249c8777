#!/usr/bin/env bash
# Load benchmark of the HTTP API on loopback (SQLite, local disk): requests/s
# and latency percentiles of GET /api/training-files and of the download-URL
# endpoint, with wrk (Debian package). Prints wrk's reports; figures go in
# docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --quiet --bin lora-files
bin="${CARGO_TARGET_DIR:-target}/release/lora-files"
data="$(mktemp -d)"
port="${PORT:-18090}"
duration="${DURATION:-10s}"
connections="${CONNECTIONS:-32}"
trap 'kill $server 2>/dev/null; rm -rf "$data"' EXIT

"$bin" user add bench@example.com --data-dir "$data" >/dev/null
"$bin" import tests/fixtures/enriched --data-dir "$data" >/dev/null
token="$("$bin" user token bench@example.com --data-dir "$data")"
RUST_LOG=warn "$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" >/dev/null 2>&1 &
server=$!
sleep 1
ids=$(curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/conversations?limit=500" | python3 -c 'import sys, json; print(" ".join(c["conversation_id"] for c in json.load(sys.stdin)["conversations"]))')
for i in $(seq 1 20); do
  id=$(echo $ids | tr ' ' '\n' | sed -n "$(( (i % 7) + 1 ))p")
  curl -s -o /dev/null -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"name\": \"bench $i\", \"conversation_ids\": [\"$id\"]}" "http://127.0.0.1:$port/api/training-files"
done
file=$(curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/training-files" | python3 -c 'import sys, json; print(json.load(sys.stdin)["files"][0]["id"])')

for path in "/api/training-files" "/api/training-files/$file/download?format=jsonl"; do
  echo "== GET $path ($connections connections, 2 threads, $duration)"
  wrk -t2 -c"$connections" -d"$duration" --latency -H "Authorization: Bearer $token" "http://127.0.0.1:$port$path" | grep -E 'Requests/sec|Latency  |50%|90%|99%|Non-2xx'
done
