"""`rearank report`: one self-contained HTML page of what a reranker did.

`inputs` holds what the page shows of a run (its files, window chains, texts), `view` turns it into what
the page shows per query and window, `build` gathers it with `rearank eval`'s numbers, `charts` draws
with matplotlib, `page` renders the Jinja2 template. Reading the files and writing the page is
`jobs.report`'s part.
"""
