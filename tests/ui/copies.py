"""Writes COUNT copies of the enriched fixtures under new conversation ids
(as the store's tests make them), for imports in bulk.

    python3 tests/ui/copies.py FIXTURES OUT COUNT
"""
import json
import os
import sys
import uuid


def main(fixtures, out, count):
    templates = []
    for name in sorted(os.listdir(fixtures)):
        text = open(os.path.join(fixtures, name), encoding="utf-8").read()
        dataset = json.loads(text).get("dataset_metadata", {}).get("dataset_name", "")
        if dataset.startswith("fp_conversation_"):
            templates.append((dataset[len("fp_conversation_"):], text))
    os.makedirs(out, exist_ok=True)
    for i in range(int(count)):
        old_id, text = templates[i % len(templates)]
        with open(os.path.join(out, f"copy-{i:05}.json"), "w", encoding="utf-8") as f:
            f.write(text.replace(old_id, str(uuid.uuid4())))


if __name__ == "__main__":
    main(*sys.argv[1:4])
