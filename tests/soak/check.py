#!/usr/bin/env python3
"""Checks one soak round's output against its input (tests/soak/run calls it).

Usage: check.py INPUT OUTPUT

What a finished `detour batch --resume` must leave, however often it was killed:
  - every line is a complete JSON object with its newline (nothing torn, nothing foreign);
  - every input id exactly once (no duplicates, none lost, none invented);
  - every line carries its input line's metadata unchanged;
  - an `ok: true` line carries the answer to its own prompt: the soak asks for JSON output,
    so detour-mock answers {"reply": "mock reply to: <prompt>"};
  - an `ok: false` line names an error class detour can give a sent line.
Prints `ok=N failed=M classes=CLASS:N,...` and exits 0, or prints what is wrong and exits 1.
Standard library only.
"""
import collections
import json
import sys

# What a line that was sent may fail with: the engine's error classes (src/engine/errors.cpp).
# bad_input, budget_exceeded and cancelled are not here: the input is valid, there is no
# --max-cost, and a run that exits by itself is never interrupted.
SENT_CLASSES = {
    "rate_limited", "quota_exhausted", "overloaded", "server_error", "timeout", "connection",
    "auth", "not_found", "bad_request", "context_length", "content_filter", "invalid_response",
    "empty_response", "refusal", "schema_mismatch", "truncated", "skipped_open",
    "skipped_budget",
}
SHOW = 5  # examples of each kind of problem


def main():
    if len(sys.argv) != 3:
        print("usage: check.py INPUT OUTPUT", file=sys.stderr)
        return 2
    input_path, output_path = sys.argv[1], sys.argv[2]

    prompts, metadata = {}, {}
    with open(input_path, encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            prompts[str(obj["id"])] = obj["prompt"]
            metadata[str(obj["id"])] = obj.get("metadata")

    problems = collections.defaultdict(list)
    seen = collections.Counter()
    classes = collections.Counter()
    ok = 0
    with open(output_path, "rb") as f:
        raw = f.read()
    if raw and not raw.endswith(b"\n"):
        problems["torn last line (no newline)"].append(raw[raw.rfind(b"\n") + 1:][:200])
    for number, line in enumerate(raw.split(b"\n")[:-1] if raw else [], start=1):
        try:
            obj = json.loads(line.decode("utf-8"))
            if not isinstance(obj, dict):
                raise ValueError("not an object")
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            problems["invalid JSON line"].append(f"line {number}: {e}: {line[:200]!r}")
            continue
        key = obj.get("id")
        if not isinstance(key, str):
            problems["line without a string id"].append(f"line {number}: {line[:200]!r}")
            continue
        seen[key] += 1
        if key not in prompts:
            problems["id not in the input"].append(f"line {number}: id {key}")
            continue
        if obj.get("metadata") != metadata[key]:
            problems["metadata not the line's own"].append(
                f"line {number}: id {key}: metadata {obj.get('metadata')!r}, want {metadata[key]!r}")
        if obj.get("ok") is True:
            ok += 1
            want = {"reply": "mock reply to: " + prompts[key]}
            content = obj.get("content")
            try:
                got = json.loads(content) if isinstance(content, str) else None
            except ValueError:
                got = None
            if got != want:
                problems["wrong answer"].append(
                    f"line {number}: id {key}: content {content!r}, want {json.dumps(want, ensure_ascii=False)!r}")
        elif obj.get("ok") is False:
            error = obj.get("error")
            cls = error.get("class") if isinstance(error, dict) else None
            classes[cls] += 1
            if cls not in SENT_CLASSES:
                problems["failed line with an unexpected error class"].append(
                    f"line {number}: id {key}: {line[:300]!r}")
        else:
            problems["line without ok true/false"].append(f"line {number}: {line[:200]!r}")

    duplicated = sorted((k for k, n in seen.items() if n > 1), key=lambda k: (len(k), k))
    lost = sorted((k for k in prompts if seen[k] == 0), key=lambda k: (len(k), k))
    for k in duplicated:
        problems["duplicate id"].append(f"id {k} appears {seen[k]} times")
    for k in lost:
        problems["lost id"].append(f"id {k} is missing")

    failed = sum(classes.values())
    summary = ",".join(f"{c}:{n}" for c, n in sorted(classes.items(), key=lambda x: (-x[1], str(x[0]))))
    print(f"ok={ok} failed={failed} duplicates={len(duplicated)} lost={len(lost)} "
          f"classes={summary or '-'}")
    if problems:
        for kind, examples in problems.items():
            print(f"check: {kind}: {len(examples)}", file=sys.stderr)
            for e in examples[:SHOW]:
                print(f"check:   {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
