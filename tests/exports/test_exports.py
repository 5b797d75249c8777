"""The exports as trainers read them (run by tests/exports/run.sh).

Every format is exported from the fixtures, split and deduplicated, then:
loaded with Hugging Face `datasets` (row counts, column types, and the
dataset card's configs); OpenAI lines checked against OpenAI's published
chat-format rules; the splits checked disjoint and covering; and the token
figures lora-files prints compared with Python tiktoken (o200k_base) and
Python tokenizers (a tokenizer.json trained here on the fixtures' text).
"""

import json
import math
import os
import re
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("LORA_FILES_BIN", str(ROOT / "target/debug/lora-files"))
ENRICHED = ROOT / "tests/fixtures/enriched"
FULL = ROOT / "tests/fixtures/full"

TOKENS = re.compile(
    r"tokens \((?P<tokenizer>.+?)\): (?P<total>\d+) tokens \((?P<training>\d+) training, (?P<context>\d+) context\) "
    r"over (?P<examples>\d+) examples; per example min (?P<min>\d+) mean (?P<mean>[\d.]+) p95 (?P<p95>\d+) max (?P<max>\d+)"
)


def export(inputs, fmt, out, *extra):
    result = subprocess.run([BIN, "export", *map(str, inputs), "--format", fmt, "--out", str(out), *extra],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise AssertionError(f"export failed: {result.stderr}")
    return result.stdout


def lines(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def openai_problems(line, allow_metadata):
    """OpenAI's cookbook checks, plus alternation after an optional system message."""
    problems = []
    if not isinstance(line, dict):
        return ["data_type"]
    for key in line:
        if key not in ("messages", "tools", "parallel_tool_calls", "functions") and not (allow_metadata and key == "metadata"):
            problems.append("unrecognized_key")
    messages = line.get("messages")
    if not isinstance(messages, list) or not messages:
        return problems + ["missing_messages_list"]
    previous = None
    for index, message in enumerate(messages):
        if "role" not in message or "content" not in message:
            problems.append("message_missing_key")
        if any(k not in ("role", "content", "name", "function_call", "weight") for k in message):
            problems.append("message_unrecognized_key")
        role = message.get("role")
        if role not in ("system", "user", "assistant"):
            problems.append("unrecognized_role")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            problems.append("missing_content")
        if index == 0 and role == "system":
            expected = None
        elif previous in (None, "system"):
            expected = "user"
        elif previous == "user":
            expected = "assistant"
        else:
            expected = "user"
        if expected and role != expected:
            problems.append("role_order")
        previous = role
    if not any(m.get("role") == "assistant" for m in messages):
        problems.append("example_missing_assistant_message")
    return problems


def example_texts(fmt, line):
    """(context texts, training texts) of one line, as lora-files counts them."""
    if fmt == "openai":
        return ([m["content"] for m in line["messages"] if m["role"] != "assistant"],
                [m["content"] for m in line["messages"] if m["role"] == "assistant"])
    if fmt == "sharegpt":
        return ([m["value"] for m in line["conversations"] if m["from"] != "gpt"],
                [m["value"] for m in line["conversations"] if m["from"] == "gpt"])
    if fmt == "alpaca":
        return [line["instruction"], line["input"]], [line["output"]]
    return ([line["system_prompt"], line["current_user_input"]] + [h["content"] for h in line["conversation_history"]],
            [line["target_response"]])


def expected_figures(fmt, rows, count):
    per_example, context, training = [], 0, 0
    for row in rows:
        c, t = example_texts(fmt, row)
        c, t = sum(count(x) for x in c), sum(count(x) for x in t)
        context, training = context + c, training + t
        per_example.append(c + t)
    per_example.sort()
    n = len(per_example)
    return {
        "total": context + training, "training": training, "context": context, "examples": n,
        "min": per_example[0], "max": per_example[-1], "p95": per_example[math.ceil(n * 0.95) - 1],
        "mean": f"{(context + training) / n:.1f}",
    }


def item(feature):
    """The feature of a list's items (`datasets` 4+ has `List`, older ones a one-item list)."""
    return feature.feature if hasattr(feature, "feature") else feature[0]


def printed_figures(stdout):
    match = TOKENS.search(stdout)
    assert match, stdout
    figures = {k: int(v) for k, v in match.groupdict().items() if k not in ("tokenizer", "mean")}
    figures["mean"] = match["mean"]
    return figures


COLUMNS = {
    "openai": {"messages"},
    "sharegpt": {"conversations"},
    "alpaca": {"instruction", "input", "output"},
    "jsonl": {"id", "conversation_id", "turn_number", "conversation_metadata", "system_prompt", "conversation_history",
              "current_user_input", "emotional_context", "target_response", "training_metadata"},
}


class Exports(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.root = Path(cls.dir.name)

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def export_split(self, fmt, *extra):
        out = self.root / f"{fmt}-split{len(extra)}"
        stdout = export([ENRICHED], fmt, out, "--name", "data", "--split", "validation=0.3", "--seed", "7", *extra)
        return out, stdout

    def test_every_format_loads_with_datasets_by_file_and_by_card(self):
        import datasets
        for fmt in COLUMNS:
            with self.subTest(fmt=fmt):
                extra = ["--with-metadata"] if fmt == "openai" else []
                out, _ = self.export_split(fmt, *extra)
                files = {"train": str(out / "data.train.jsonl"), "validation": str(out / "data.validation.jsonl")}
                loaded = datasets.load_dataset("json", data_files=files)
                for split, path in files.items():
                    self.assertEqual(loaded[split].num_rows, len(lines(path)))
                    expected = COLUMNS[fmt] | ({"metadata"} if fmt == "openai" else set())
                    self.assertEqual(set(loaded[split].column_names), expected)
                features = loaded["train"].features
                if fmt == "openai":
                    self.assertEqual(item(features["messages"])["role"].dtype, "string")
                    self.assertEqual(item(features["messages"])["content"].dtype, "string")
                    self.assertEqual(features["metadata"]["quality_score"].dtype, "float64")
                    self.assertEqual(features["metadata"]["quality_tier"].dtype, "string")
                if fmt == "sharegpt":
                    self.assertEqual(item(features["conversations"])["from"].dtype, "string")
                if fmt == "alpaca":
                    self.assertTrue(all(features[c].dtype == "string" for c in COLUMNS["alpaca"]))
                # The folder as it would be uploaded: the card's configs name the split files.
                by_card = datasets.load_dataset(str(out))
                self.assertEqual(sorted(by_card.keys()), ["train", "validation"])
                self.assertEqual(by_card["validation"].num_rows, loaded["validation"].num_rows)

    def test_openai_lines_pass_openais_chat_format_rules(self):
        for source in (ENRICHED, *sorted(FULL.glob("*.json"))):
            for extra, allow in (([], False), (["--with-metadata"], True)):
                out = self.root / f"openai-rules-{source.stem}{len(extra)}"
                export([source], "openai", out, "--name", "rules", *extra)
                rows = lines(out / "rules.train.jsonl")
                self.assertTrue(rows)
                for row in rows:
                    self.assertEqual(openai_problems(row, allow), [], row)

    def test_splits_are_disjoint_and_cover_every_conversation(self):
        out, _ = self.export_split("jsonl")
        train = {r["conversation_id"] for r in lines(out / "data.train.jsonl")}
        validation = {r["conversation_id"] for r in lines(out / "data.validation.jsonl")}
        everything = {r["conversation_id"] for r in lines(self.whole_jsonl())}
        self.assertFalse(train & validation)
        self.assertEqual(train | validation, everything)
        self.assertLessEqual(abs(len(validation) - 0.3 * len(everything)), 1)
        # The same seed gives the same split.
        again, _ = self.export_split("jsonl")
        self.assertEqual((out / "data.validation.jsonl").read_bytes(), (again / "data.validation.jsonl").read_bytes())

    def whole_jsonl(self):
        out = self.root / "whole"
        if not (out / "all.train.jsonl").exists():
            export([ENRICHED], "jsonl", out, "--name", "all")
        return out / "all.train.jsonl"

    def test_dedup_drops_later_copies_of_a_pair(self):
        source = self.root / "with-copy.jsonl"
        rows = lines(self.whole_jsonl())
        # The same pair in another conversation, its target spaced differently.
        copy = dict(rows[0], id=rows[0]["id"].rsplit("_", 1)[0] + "_00000000", conversation_id="00000000-0000-4000-8000-00000000c0de",
                    target_response="  " + rows[0]["target_response"].replace(" ", "\n  ", 1))
        source.write_text("".join(json.dumps(r) + "\n" for r in rows + [copy]), encoding="utf-8")
        kept = export([source], "alpaca", self.root / "kept")
        dropped = export([source], "alpaca", self.root / "dropped", "--dedup")
        self.assertRegex(kept, r"; 1 duplicate\(s\)\n")
        self.assertEqual(len(lines(self.root / "kept/with-copy.train.jsonl")), len(rows) + 1)
        self.assertEqual(len(lines(self.root / "dropped/with-copy.train.jsonl")), len(rows))
        self.assertIn("1 duplicate(s) dropped", dropped)

    def test_o200k_counts_equal_python_tiktoken(self):
        import tiktoken
        encoding = tiktoken.get_encoding("o200k_base")
        count = lambda text: len(encoding.encode_ordinary(text))
        for fmt in COLUMNS:
            with self.subTest(fmt=fmt):
                out, stdout = self.export_split(fmt)
                rows = lines(out / "data.train.jsonl") + lines(out / "data.validation.jsonl")
                self.assertEqual(printed_figures(stdout), expected_figures(fmt, rows, count))

    def test_tokenizer_json_counts_equal_python_tokenizers(self):
        from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
        texts = []
        for row in lines(self.whole_jsonl()):
            texts += [row["system_prompt"], row["current_user_input"], row["target_response"]]
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        tokenizer.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        path = self.root / "tokenizer.json"
        tokenizer.save(str(path))
        count = lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids) if text else 0
        for fmt in ("openai", "alpaca"):
            with self.subTest(fmt=fmt):
                out = self.root / f"hf-{fmt}"
                stdout = export([ENRICHED], fmt, out, "--name", "data", "--tokenizer", str(path))
                self.assertIn(f"tokens ({path})", stdout)
                self.assertEqual(printed_figures(stdout), expected_figures(fmt, lines(out / "data.train.jsonl"), count))

    def test_examples_over_max_tokens_are_warned_and_kept(self):
        out = self.root / "limit"
        result = subprocess.run([BIN, "export", str(ENRICHED), "--format", "alpaca", "--out", str(out), "--max-tokens", "1000"],
                                capture_output=True, text=True, check=True)
        over = re.search(r"; (\d+) over 1000", result.stdout)
        self.assertTrue(over and int(over[1]) > 0, result.stdout)
        self.assertEqual(result.stderr.count("over --max-tokens"), int(over[1]))
        self.assertEqual(len(lines(out / "enriched.train.jsonl")), len(lines(self.whole_jsonl())))


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print(f"{result.testsRun - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)
