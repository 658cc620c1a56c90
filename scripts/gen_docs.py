"""Regenerate the parts of docs/ that come from schemas/ (between GENERATED markers).

python scripts/gen_docs.py          # rewrite
python scripts/gen_docs.py --check  # exit 1 if anything is out of date
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- GENERATED from schemas/errors.json: do not edit -->", "<!-- END GENERATED -->"


def error_table() -> str:
    codes = json.loads((ROOT / "schemas" / "errors.json").read_text())["x-codes"]
    rows = [f"| {c['code']} | {c['name']} | {c['meaning']} |" for c in codes]
    return "\n".join([BEGIN, "| code | name | meaning |", "|---|---|---|", *rows, END])


def render(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + error_table() + text[end:]


def main() -> int:
    path = ROOT / "docs" / "errors.md"
    current = path.read_text()
    fresh = render(current)
    if "--check" in sys.argv:
        if fresh != current:
            print(f"{path} is out of date: run python scripts/gen_docs.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
