"""Rendering the page: one Jinja2 template, autoescaped, written atomically as one HTML file.

Every model output, passage, query and docid is untrusted text: the template only prints it escaped
(or through `tojson` inside a JSON script block, which escapes `<`, `>` and `&`), and the page's script
puts passage text into the DOM with `textContent`. Only the SVG charts (matplotlib's output, whose
text it escapes itself) are inserted as markup.
"""

from __future__ import annotations

from typing import Any

from rearank_cli.errors import require
from rearank_cli.formats import atomic_output
from rearank_cli.report.build import Page
from rearank_cli.report.view import outcome

LABEL_CLASSES = {0: "l0", 1: "l1", 2: "l2", 3: "l3"}


def label_class(label: int | None) -> str:
    """CSS class of a qrels label (unjudged docs: `lu`)."""
    if label is None:
        return "lu"
    return LABEL_CLASSES.get(label, "l3" if label > 3 else "l0")


def fmt(value: float | None, digits: int = 4, sign: bool = False) -> str:
    """A number as the page prints it (`–` for none)."""
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def p_value(p: float) -> str:
    """A p-value as `rearank eval` prints it."""
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def marks(comparison: Any, alpha: float = 0.05) -> str:
    """`*` (t-test) and `+` (randomization test) for p < alpha, as `rearank eval` marks them."""
    if comparison is None:
        return ""
    return ("*" if comparison.p_ttest < alpha else "") + ("+" if comparison.p_randomization < alpha else "")


def render(page: Page) -> str:
    """The whole report as one HTML document."""
    jinja2 = require("jinja2", "report")
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("rearank_cli.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fmt=fmt, p_value=p_value, label_class=label_class, marks=marks)
    from markupsafe import Markup

    env.globals.update(outcome=lambda delta: outcome(delta, page.tie), safe_svg=Markup)
    return str(env.get_template("report.html.j2").render(page=page))


def write_report(page: Page, path: str) -> int:
    """Render `page` and write it atomically to `path`; returns its size in bytes."""
    data = render(page).encode()
    with atomic_output(path, "wb") as out:
        out.write(data)
    return len(data)
