"""`rearank report`: one self-contained HTML page of what a reranker did.

`inputs` finds and reads the files (runs, journals, manifests, texts), `view` turns them into what the
page shows, `build` gathers it all with `rearank eval`'s numbers, `charts` draws with matplotlib, `page`
renders the Jinja2 template.
"""

from __future__ import annotations

import logging

log = logging.getLogger("rearank")


def make_report(job) -> int:
    """Build and write the report of `job` (a `build.ReportJob`); returns the file's size in bytes."""
    from rearank_cli.errors import require

    require("jinja2", "report")
    require("matplotlib", "report")
    from rearank_cli.report.build import build_report
    from rearank_cli.report.page import write_report

    page = build_report(job)
    size = write_report(page, job.output)
    log.info("%s: %d queries, %d run(s), %.1f MB", job.output, len(page.queries), len(page.runs), size / 1e6)
    return size
