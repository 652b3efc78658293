"""Import progress and summaries."""

from __future__ import annotations

import io

from cloud.refdata.report import Progress, RowProblem, Summary


def test_progress_prints_at_most_once_per_interval_and_at_the_end() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = Progress("regions", 10, out, interval_s=1.0, clock=lambda: now[0])
    for _ in range(10):
        now[0] += 0.3
        progress.step()
    progress.finish()
    assert out.getvalue().splitlines() == ["regions: 4/10", "regions: 8/10", "regions: 10/10"]


def test_summary_lines() -> None:
    summary = Summary("regions imported from x.geojson")
    summary.counts.update({"district": 3, "city": 2})
    summary.repaired.append("city 210200 大连市")
    summary.problems += [
        RowProblem("feature 4 (某地)", "missing_adcode", "no property holds a six-digit code"),
        RowProblem("feature 9", "not_a_feature", "not a GeoJSON Feature"),
    ]
    assert summary.lines() == [
        "regions imported from x.geojson: city 2, district 3",
        "repaired (1): city 210200 大连市",
        "skipped (2): missing_adcode 1, not_a_feature 1",
        "  feature 4 (某地): missing_adcode: no property holds a six-digit code",
        "  feature 9: not_a_feature: not a GeoJSON Feature",
    ]
    assert Summary("nothing").lines() == ["nothing: nothing"]
