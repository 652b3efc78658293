"""Rebuild docs/gpsd-agreement.md: our NMEA decoding against GPSD's on its regression logs.

Usage: .venv/bin/python scripts/gpsd_agreement.py [--check]

``--check`` writes nothing and exits 1 when the document is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.golden.gpsd_compare import compare, logs, render_markdown  # noqa: E402

DOC = ROOT / "docs" / "gpsd-agreement.md"


def main(argv: list[str]) -> int:
    results = [compare(log) for log in logs()]
    if not results:
        print("no logs found", file=sys.stderr)
        return 2
    text = render_markdown(results)
    if "--check" in argv:
        if DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC} is out of date; run scripts/gpsd_agreement.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    for r in results:
        print(f"{r.log:36s} {r.matched:3d}/{r.gpsd_fixed:<3d} extra {len(r.extra)}")
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
