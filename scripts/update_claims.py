"""Write recomputed claim values into linattn/claims.yml after an intended change of the computation.

    LINATTN_CLAIMS_COLLECT=/tmp/claims.jsonl pytest --nbval-lax book/   # or any way of executing the chapters
    python scripts/update_claims.py /tmp/claims.jsonl [--dry-run]

``linattn.claims.record`` appends every checked value to the file instead of raising while
LINATTN_CLAIMS_COLLECT is set. For each claim whose value (or interval ``lo``/``hi``) differs from
its stated block (inside the tolerance or not: the registry states what the code computes), this
script rewrites those numbers in the block's line of claims.yml, keeping the rest of the line
(scale, tolerances) as written, and re-reads the file to check the edit. Claims
whose verdict the check now changes are listed and left alone: a verdict is a sentence of the
book and is changed by hand, with its reason.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys

import yaml

REGISTRY = pathlib.Path(__file__).resolve().parents[1] / "linattn" / "claims.yml"


def _literal(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(v)


def _set_key(line: str, key: str, value) -> str:
    """``line`` with the scalar after ``key:`` (first occurrence outside quotes) replaced."""
    i, quoted = 0, False
    pattern = re.compile(rf"(?<![\w]){key}: ")
    while i < len(line):
        ch = line[i]
        if ch == '"' and (i == 0 or line[i - 1] != "\\"):
            quoted = not quoted
        if not quoted:
            m = pattern.match(line, i)
            if m and (i == 0 or line[i - 1] in "{ ,"):
                end = m.end()
                stop = end
                if line[end] == '"':
                    stop = line.index('"', end + 1) + 1
                else:
                    while line[stop] not in ",}":
                        stop += 1
                return line[:end] + _literal(value) + line[stop:]
        i += 1
    raise KeyError(f"no {key!r} in {line!r}")


def _same(a, b) -> bool:
    if isinstance(a, (bool, str)) or isinstance(b, (bool, str)) or a is None or b is None:
        return a == b
    return abs(float(a) - float(b)) <= 1e-12 * max(abs(float(a)), abs(float(b)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("log", help="the JSON-lines file written under LINATTN_CLAIMS_COLLECT")
    ap.add_argument("--dry-run", action="store_true", help="print the changes, write nothing")
    args = ap.parse_args(argv)

    entries = [json.loads(line) for line in open(args.log) if line.strip()]
    last = {}
    for e in entries:  # a chapter run twice: its last value
        last[(e["id"], e["block"])] = e
    lines = REGISTRY.read_text().splitlines(keepends=True)
    starts = {m.group(1): i for i, line in enumerate(lines) if (m := re.match(r"- id: (\S+)", line))}
    reg = {c["id"]: c for c in yaml.safe_load(REGISTRY.read_text())}
    changed, verdicts = [], []
    for (cid, block), e in sorted(last.items()):
        if e.get("verdict") is not None and e["verdict"] != e["stated_verdict"]:
            verdicts.append(f"{cid}: the check now gives {e['verdict']!r}, claims.yml states {e['stated_verdict']!r}")
        stated = reg[cid][block]
        keys = [k for k in ("value", "lo", "hi") if e.get(k) is not None and stated.get(k) is not None]
        if all(_same(e[k], stated[k]) for k in keys):
            continue
        i = starts[cid] + 1
        while not lines[i].startswith(f"  {block}: "):
            i += 1
            if lines[i].startswith("- id: "):
                raise SystemExit(f"{cid}: no {block} line")
        new = lines[i]
        for key in keys:
            new = _set_key(new, key, e[key])
        print(f"{cid} [{block}]: {stated.get('value')!r} -> {e['value']!r}"
              + (f"  [{stated.get('lo')!r}, {stated.get('hi')!r}] -> [{e.get('lo')!r}, {e.get('hi')!r}]"
                 if stated.get("lo") is not None and e.get("lo") is not None else ""))
        lines[i] = new
        changed.append((cid, block, e))
    if verdicts:
        print("\nverdicts the check now changes (edit by hand, with the reason):", *verdicts, sep="\n  ")
    if args.dry_run or not changed:
        print(f"\n{len(changed)} claims would change" if args.dry_run else "\nnothing to change")
        return 0
    text = "".join(lines)
    check = {c["id"]: c for c in yaml.safe_load(text)}
    for cid, block, e in changed:
        for key in ("value", "lo", "hi"):
            if e.get(key) is not None and reg[cid][block].get(key) is not None:
                assert check[cid][block][key] == e[key], (cid, block, key)
    REGISTRY.write_text(text)
    print(f"\n{len(changed)} claims updated in {REGISTRY}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
