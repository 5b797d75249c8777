#!/usr/bin/env bash
# The exports as trainers read them: builds lora-files, then checks every
# export format with Hugging Face `datasets`, OpenAI's chat-format rules and
# the reference tokenizers (Python tiktoken, Python tokenizers). Offline: the
# o200k vocabulary comes from the copy tiktoken-rs bundles.
# Usage: tests/exports/run.sh   (installs datasets, tiktoken, tokenizers with pip when missing)
set -euo pipefail
cd "$(dirname "$0")/../.."

python3 -c 'import datasets, tiktoken, tokenizers' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check datasets tiktoken tokenizers
cargo build --quiet --bin lora-files

# tiktoken looks a vocabulary up in TIKTOKEN_CACHE_DIR under the SHA-1 of its download URL.
vocabulary="$(cargo metadata --format-version 1 | python3 -c '
import json, os, sys
for package in json.load(sys.stdin)["packages"]:
    if package["name"] == "tiktoken-rs":
        print(os.path.join(os.path.dirname(package["manifest_path"]), "assets", "o200k_base.tiktoken"))
        break
')"
[ -f "$vocabulary" ] || { echo "tiktoken-rs's o200k_base.tiktoken not found (cargo fetch first)" >&2; exit 1; }
cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT
url="https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
cp "$vocabulary" "$cache/$(printf '%s' "$url" | sha1sum | cut -d' ' -f1)"

TIKTOKEN_CACHE_DIR="$cache" HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 \
  LORA_FILES_BIN="${CARGO_TARGET_DIR:-target}/debug/lora-files" \
  python3 tests/exports/test_exports.py
