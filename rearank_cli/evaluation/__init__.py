"""Evaluation with trec_eval 9.0.x's numbers, in ir_measures' shape.

- `measures`: `Measure` objects and the parsing of trec_eval names, parameters and short forms;
- `providers`: what computes each measure per query (pytrec_eval's C code; Judged@k, MRR@k, relstring);
- `aggregate`: trec_eval -c's summaries (missing queries as empty rankings);
- `evaluator`: `Evaluator(qrels, measures, level)` for runs in memory or in files, and `evaluate()`;
- `significance`: comparisons with a baseline (win/tie/loss, t-test, randomization test);
- `render`: the table, JSON and trec_eval layouts (`rearank eval` itself is `jobs.eval`).

Importing this package imports nothing heavy (pytrec_eval, numpy, scipy load when used).
"""

from __future__ import annotations

from rearank_cli.evaluation.evaluator import Evaluator, RunResult, evaluate, load_qrels
from rearank_cli.evaluation.measures import Measure, parse_measure, parse_measures
from rearank_cli.evaluation.render import EvalReport
from rearank_cli.evaluation.significance import TIE_EPSILON, Comparison, compare
from rearank_cli.settings.commands import DEFAULT_MEASURES

__all__ = ["DEFAULT_MEASURES", "TIE_EPSILON", "Comparison", "EvalReport", "Evaluator", "Measure", "RunResult",
           "compare", "evaluate", "load_qrels", "parse_measure", "parse_measures"]
