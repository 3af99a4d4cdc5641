"""docs/performance.md shows the committed full run as the bench rendered it from latest.json."""

from __future__ import annotations

import json

from bench.run import PERFORMANCE_DOC, RESULTS, RUN_BEGIN, RUN_END, with_last_run


def test_the_last_run_block_is_the_committed_runs_report():
    page = PERFORMANCE_DOC.read_text()
    results = json.loads((RESULTS / "latest.json").read_text())
    assert RUN_BEGIN in page and RUN_END in page
    assert with_last_run(page, results) == page, "docs/performance.md is stale: make bench renders it"
