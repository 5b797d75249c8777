#!/usr/bin/env bash
# Runs every test of lora-files on a fresh machine: installs and starts what
# the tests need (PostgreSQL where none is reachable, an S3-compatible server,
# schemathesis, Chromium), checks a running server with schemathesis and a
# headless browser, then runs the whole workspace's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

S3_PORT="${LORA_FILES_TEST_S3_PORT:-5055}"
S3_BUCKET=lora-files-test
STARTED_PIDS=()
cleanup() { for pid in "${STARTED_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

ensure_rust() {
  if ! command -v cargo >/dev/null; then
    log "cargo is missing: install Rust (https://rustup.rs) and run again"
    exit 1
  fi
}

postgres_up() { psql -h 127.0.0.1 -U postgres -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; }

# The tests connect as postgres to 127.0.0.1:5432 without a password and
# create (and drop) a database each.
ensure_postgres() {
  postgres_up && return
  if ! command -v pg_ctlcluster >/dev/null; then
    log "installing PostgreSQL"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local version hba
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q 'lora-files tests' "$hba"; then
    log "letting local test connections in without a password ($hba)"
    sed -i '1i host all all 127.0.0.1/32 trust # lora-files tests' "$hba"
  fi
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  for _ in $(seq 30); do postgres_up && return; sleep 1; done
  log "PostgreSQL did not come up"; exit 1
}

s3_up() { python3 - "$S3_PORT" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=2)
PY
}

# moto's server from PyPI, on loopback, with one bucket for the tests.
ensure_s3() {
  if ! s3_up; then
    command -v moto_server >/dev/null || { log "installing moto (S3-compatible test server)"; python3 -m pip install --quiet --disable-pip-version-check 'moto[server]'; }
    log "starting moto on 127.0.0.1:$S3_PORT"
    moto_server -H 127.0.0.1 -p "$S3_PORT" >"${TMPDIR:-/tmp}/lora-files-moto.log" 2>&1 &
    STARTED_PIDS+=($!)
    for _ in $(seq 60); do s3_up && break; sleep 0.5; done
    s3_up || { log "moto did not come up"; cat "${TMPDIR:-/tmp}/lora-files-moto.log" >&2; exit 1; }
  fi
  python3 - "$S3_PORT" "$S3_BUCKET" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/{sys.argv[2]}", method="PUT"))
except urllib.error.HTTPError as e:
    if e.code != 409:  # already there
        raise
PY
  export AWS_ACCESS_KEY_ID=lora-files-test AWS_SECRET_ACCESS_KEY=lora-files-test AWS_REGION=us-east-1
  export AWS_ENDPOINT_URL="http://127.0.0.1:$S3_PORT"
  export LORA_FILES_TEST_S3_URL="s3://$S3_BUCKET/tests"
  # The S3 suite must run here: a missing URL fails it instead of skipping.
  export LORA_FILES_REQUIRE_S3=1
}

# schemathesis (PyPI) against a running server's /api/openapi.json with a
# valid token: no 5xx, every response as documented.
run_schemathesis() {
  command -v schemathesis >/dev/null || { log "installing schemathesis"; python3 -m pip install --quiet --disable-pip-version-check schemathesis; }
  log "building the server for schemathesis"
  cargo build --quiet --bin lora-files
  local bin="${CARGO_TARGET_DIR:-target}/debug/lora-files" data port=18099
  data="$(mktemp -d)"
  "$bin" user add schemathesis@example.com --data-dir "$data" >/dev/null
  "$bin" scaffolding load --bundled --data-dir "$data" >/dev/null
  "$bin" import tests/fixtures/enriched --data-dir "$data" >/dev/null
  # Real data behind every operation, which the document's links lead
  # schemathesis to: training files (with their jobs), and a raw
  # conversation to enrich or replace.
  "$bin" import tests/fixtures/raw/single-convo-file-3-raw.json --persona pragmatic_optimist --arc shame_to_acceptance \
    --topic grandparent_529 --data-dir "$data" >/dev/null
  local ids
  ids="$(python3 -c '
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    name = json.loads(path.read_text()).get("dataset_metadata", {}).get("dataset_name", "")
    if name.startswith("fp_conversation_"):
        print(name.removeprefix("fp_conversation_"))
' tests/fixtures/enriched)"
  # shellcheck disable=SC2086 # one argument per id
  "$bin" create "seeded" $ids --data-dir "$data" >/dev/null
  "$bin" create "seeded, one conversation" "$(head -n1 <<<"$ids")" --data-dir "$data" >/dev/null
  local token
  token="$("$bin" user token schemathesis@example.com --data-dir "$data")"
  "$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" >"$data/serve.log" 2>&1 &
  local server=$!
  STARTED_PIDS+=("$server")
  log "schemathesis against http://127.0.0.1:$port/api/openapi.json"
  schemathesis run "http://127.0.0.1:$port/api/openapi.json" --wait-for-schema 30 \
    -H "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance \
    --max-examples 50 --no-color --seed 20261125
  kill "$server"
}

# The web UI in headless Chromium (Debian's chromium + chromium-driver,
# driven with selenium from PyPI).
run_browser_test() {
  if ! command -v chromedriver >/dev/null || ! [ -x /usr/bin/chromium ]; then
    log "installing Chromium and chromedriver"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  fi
  python3 -c 'import selenium' 2>/dev/null || { log "installing selenium"; python3 -m pip install --quiet --disable-pip-version-check selenium; }
  local bin="${CARGO_TARGET_DIR:-target}/debug/lora-files" data port=18098
  data="$(mktemp -d)"
  "$bin" user add browser@example.com --password "a browser test password" --data-dir "$data" >/dev/null
  "$bin" scaffolding load --bundled --data-dir "$data" >/dev/null
  "$bin" import tests/fixtures/enriched --data-dir "$data" >/dev/null
  # 5 000 more (copies of the fixtures under new ids), imported in bulk, for
  # the page that follows a long create's progress.
  python3 tests/ui/copies.py tests/fixtures/enriched "$data/copies" 5000
  "$bin" import "$data/copies" --data-dir "$data" >/dev/null
  "$bin" serve --data-dir "$data" --listen "127.0.0.1:$port" >"$data/serve.log" 2>&1 &
  local server=$!
  STARTED_PIDS+=("$server")
  for _ in $(seq 60); do
    python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" "http://127.0.0.1:$port/api/health" 2>/dev/null && break
    sleep 0.5
  done
  log "the web UI in headless Chromium"
  python3 tests/ui/browser.py "http://127.0.0.1:$port" browser@example.com "a browser test password" tests/fixtures/raw/single-convo-file-3-raw.json
  kill "$server"
}

# The exports as trainers read them: Hugging Face `datasets`, OpenAI's chat
# rules, Python tiktoken and tokenizers (from PyPI; the script installs them).
run_export_tests() {
  log "the exports with datasets, tiktoken and tokenizers"
  tests/exports/run.sh
}

# Run a second time with their objects on S3 (`TestStore::new` reads
# LORA_FILES_TEST_SERVICE_STORAGE_URL): every suite whose tests store and
# read objects through the services or the HTTP API. A `--test` names the
# suite in whichever package has it (`jobs` in both). Not the fault suite
# (each operation failed at each storage call: minutes on S3); its S3 test of
# open uploads runs in every pass.
S3_SUITES=(
  -p lora-files-store --test service --test doctor --test enrichment --test versions --test jobs
  -p lora-files-server --test api --test web --test downloads --test exports
)

run_tests() {
  log "running the tests"
  if cargo nextest --version >/dev/null 2>&1; then
    # nextest does not run doctests; they run first so the summary of the
    # whole suite is the last thing printed.
    cargo test --workspace --doc --quiet
    log "the suites that store objects, on S3 storage"
    LORA_FILES_TEST_SERVICE_STORAGE_URL="$LORA_FILES_TEST_S3_URL/service" cargo nextest run "${S3_SUITES[@]}" --no-fail-fast --status-level fail
    cargo nextest run --workspace --all-targets --no-fail-fast
  else
    LORA_FILES_TEST_SERVICE_STORAGE_URL="$LORA_FILES_TEST_S3_URL/service" cargo test "${S3_SUITES[@]}" --no-fail-fast
    cargo test --workspace --all-targets --no-fail-fast
  fi
}

ensure_rust
ensure_postgres
ensure_s3
run_schemathesis
run_browser_test
run_export_tests
run_tests
