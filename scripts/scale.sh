#!/usr/bin/env bash
# The scale run of docs/performance.md: N generated conversations (default
# 100 000, ~5.4 GB of input) through the service. Imports them, creates one
# file of all of them over HTTP, adds 10, removes 1, downloads JSON and JSONL
# of the latest version and of version 1 (checking each against the size the
# API states), while a sampler times the list and detail endpoints. Prints
# each step's time and the server's peak RSS (VmHWM). Not run in CI.
#
#   scripts/scale.sh [N]                      SQLite + local disk
#   BACKEND=postgres+s3 scripts/scale.sh 10000  PostgreSQL (127.0.0.1:5432) + S3 (moto, started here)
#
# WORK=/big/disk keeps the generated inputs and the data there (default: a
# temporary folder, removed after).
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-100000}"
backend="${BACKEND:-sqlite}"
port="${PORT:-18091}"
work="${WORK:-$(mktemp -d)}"
base="http://127.0.0.1:$port"
mkdir -p "$work"

cargo build --release --quiet --bin lora-files
bin="$PWD/${CARGO_TARGET_DIR:-target}/release/lora-files"
pids=()
scale_cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; [ -n "${WORK:-}" ] || rm -rf "$work"; }

export LORA_FILES_DATA_DIR="$work/data"
export LORA_FILES_MAX_OBJECT_BYTES=$((64 << 30))
if [ "$backend" = "postgres+s3" ]; then
  db="lora_files_scale_$$"
  psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $db" >/dev/null
  export LORA_FILES_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db"
  source <(sed '/^ensure_rust$/,$d' scripts/test.sh)
  ensure_s3
  pids+=("${STARTED_PIDS[@]}")
  export LORA_FILES_STORAGE_URL="s3://$S3_BUCKET/scale-$$"
fi

# Set here, after test.sh is sourced: its own EXIT trap would replace this one.
trap scale_cleanup EXIT
if curl -sf "$base/api/health" >/dev/null 2>&1; then
  echo "something already answers on port $port (a server left running?); set PORT to another port" >&2
  exit 1
fi

step_started=0
step() { step_started=$(date +%s.%N); printf '%-46s' "$1"; }
# Each step's time, and once the server runs, its peak RSS so far (VmHWM).
done_step() {
  local peak=""
  [ -n "${server:-}" ] && peak="$(awk '/VmHWM/ {printf "peak RSS %.0f MB  ", $2 / 1024}' "/proc/$server/status" 2>/dev/null || true)"
  printf '%8.2f s  %s%s\n' "$(echo "$(date +%s.%N) - $step_started" | bc)" "$peak" "${1:-}"
}

step "generate $count conversations"
"$bin" bench generate --conversations "$count" "$work/inputs" >/dev/null
done_step "$(du -sh "$work/inputs" | cut -f1)"

"$bin" user add scale@example.com >/dev/null
step "import (lora-files import, batched)"
"$bin" import "$work/inputs" >"$work/import.log"
done_step "$(tail -1 "$work/import.log")"

token="$("$bin" user token scale@example.com)"
RUST_LOG=warn "$bin" serve --listen "127.0.0.1:$port" --max-ids-per-request "$count" --max-body-bytes $((64 << 20)) \
  >"$work/serve.log" 2>&1 &
server=$!
pids+=("$server")
for _ in $(seq 100); do curl -sf "$base/api/health" >/dev/null && break; sleep 0.1; done
auth=(-H "Authorization: Bearer $token")
api() { curl -sS --fail-with-body "${auth[@]}" "$@"; }
# A change answers 202 with its job when it runs longer than the server's
# sync wait (or when asked to, as here): follows the job in $1's answer
# until it ends, and fails unless it succeeded.
follow() {
  local job
  job="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("job", {}).get("id", ""))' "$1")"
  [ -n "$job" ] || return 0
  while true; do
    state="$(api "$base/api/jobs/$job" | python3 -c 'import json, sys; print(json.load(sys.stdin)["job"]["state"])')"
    case "$state" in
      succeeded) return 0 ;;
      failed|cancelled) echo "job $job $state: $(api "$base/api/jobs/$job")" >&2; return 1 ;;
    esac
    sleep 0.5
  done
}

# The conversation ids, from the generated file names.
find "$work/inputs" -name '*.json' -printf '%f\n' | sed 's/\.json$//' | sort >"$work/ids"
head -n $((count - 10)) "$work/ids" >"$work/base-ids"
tail -n 10 "$work/ids" >"$work/added-ids"
python3 -c 'import json, sys; print(json.dumps({"name": f"scale {sys.argv[2]}", "conversation_ids": open(sys.argv[1]).read().split()}))' "$work/base-ids" "$(date +%s)" >"$work/create.json"

# Times GET /api/training-files and the file's detail every 0.5 s while the steps run.
sample() {
  while true; do
    curl -s -o /dev/null -w 'list %{time_total}\n' "${auth[@]}" "$base/api/training-files" >>"$work/samples"
    if [ -s "$work/file-id" ]; then
      curl -s -o /dev/null -w 'detail %{time_total}\n' "${auth[@]}" "$base/api/training-files/$(cat "$work/file-id")" >>"$work/samples"
    fi
    sleep 0.5
  done
}
sample &
pids+=($!)

step "create a file of $((count - 10)) (POST)"
api -H 'content-type: application/json' -H 'Prefer: respond-async' --data-binary @"$work/create.json" "$base/api/training-files" >"$work/created.json"
python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["trainingFile"]["id"])' "$work/created.json" >"$work/file-id"
file="$(cat "$work/file-id")"
follow "$work/created.json"
done_step "$(api "$base/api/training-files/$file" | python3 -c 'import json, sys; f = json.load(sys.stdin)["trainingFile"]; print(f["conversation_count"], "conversations,", f["json_file_size"], "+", f["jsonl_file_size"], "bytes")')"

step "add 10 (POST …/conversations)"
python3 -c 'import json, sys; print(json.dumps({"conversation_ids": open(sys.argv[1]).read().split()}))' "$work/added-ids" >"$work/add.json"
api -H 'content-type: application/json' --data-binary @"$work/add.json" "$base/api/training-files/$file/add-conversations" >"$work/added.json"
follow "$work/added.json"
done_step

step "remove 1 (DELETE …/conversations/{id})"
api -X DELETE "$base/api/training-files/$file/conversations/$(head -1 "$work/ids")" >"$work/removed.json"
follow "$work/removed.json"
done_step

# The create left its tokens to be counted after it committed.
step "export figures counted (detail states them)"
until api "$base/api/training-files/$file" | python3 -c 'import json, sys; sys.exit(0 if "exports" in json.load(sys.stdin) else 1)'; do sleep 1; done
done_step "$(api "$base/api/training-files/$file" | python3 -c 'import json, sys; e = json.load(sys.stdin)["exports"]; print(e["total_tokens"], "tokens,", e["examples"], "examples")' 2>/dev/null || true)"

detail="$(api "$base/api/training-files/$file")"
for version in latest 1; do
  for format in json jsonl; do
    query="format=$format"
    [ "$version" = latest ] || query="$query&version=$version"
    step "download $format of version $version"
    url="$(api "$base/api/training-files/$file/download?$query" | python3 -c 'import json, sys; print(json.load(sys.stdin)["download_url"])')"
    size="$(curl -sS --fail -o /dev/null -w '%{size_download}' "$url")"
    done_step "$size bytes"
  done
done
echo "$detail" | python3 -c 'import json, sys; f = json.load(sys.stdin)["trainingFile"]; print("latest version {}: {} conversations, JSON {} bytes, JSONL {} bytes".format(f["version"], f["conversation_count"], f["json_file_size"], f["jsonl_file_size"]))'

kill "${pids[-1]}" 2>/dev/null || true
python3 - "$work/samples" <<'PY'
import sys, statistics
times = {}
for line in open(sys.argv[1]):
    kind, t = line.split()
    times.setdefault(kind, []).append(float(t) * 1000)
for kind, ts in sorted(times.items()):
    ts.sort()
    print(f"{kind} endpoint during the run: {len(ts)} requests, median {statistics.median(ts):.1f} ms, p95 {ts[int(len(ts) * 0.95) - 1]:.1f} ms, max {ts[-1]:.1f} ms")
PY
echo "server peak RSS (VmHWM): $(grep VmHWM "/proc/$server/status" | awk '{printf "%.1f MB", $2 / 1024}')"
