"""``python -m soak.report FILE``: the summary a soak run wrote, as a Markdown table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .harness import Row, Summary


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m soak.report SUMMARY.json", file=sys.stderr)
        return 2
    doc = json.loads(Path(args[0]).read_text())
    summary = Summary()
    summary.rows = [Row(**row) for row in doc["rows"]]
    print(summary.table(markdown=True))
    notes = [f"- {r.scenario}: {r.note}" for r in summary.rows if r.note]
    if notes:
        print("\n" + "\n".join(notes))
    machine = doc.get("machine", {})
    print(f"\n{machine.get('cpus')} CPUs, {machine.get('memory_gib')} GiB, Python {machine.get('python')}; "
          f"{doc.get('seconds')} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
