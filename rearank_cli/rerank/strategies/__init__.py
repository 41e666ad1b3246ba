"""Window strategies: which windows of one query run, in what order, and how their answers build the
query's final order. Pure: no I/O, no backend.

Every strategy is a per-query state machine the scheduler drives through one small interface
(`base.StrategyState`): `ready()` lists the windows that can run now (those the scheduler has not sent
yet are sent together), `apply(window, permutation)` feeds back one window's answer (indices into the
window, best first), `done` says the order is settled, `final_docids()` is the query's order (the
reranked head above the documents beyond `--depth` in their first-stage order). `registry` has them by
name (`--strategy`), one module each (`sliding`: the paper's bottom-up window, one at a time; `tdpart`:
top-down partitioning, Parry, MacAvaney and Ganguly, arXiv 2405.14589, a round's windows in parallel).
A strategy's own parameters are declared in its module (`Strategy.Params`, a `base.StrategyParams`); the
registry hands their classes to `rearank rerank` (`registry.params_classes`), which makes their flags.
"""

from __future__ import annotations
