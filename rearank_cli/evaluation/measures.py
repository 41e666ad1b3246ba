"""Measures: trec_eval 9.0.x's names, nicknames, parameters and rearank's short forms, as `Measure` objects.

A `Measure` is one value line of trec_eval (`ndcg_cut_10`, `iprec_at_recall_0.10`, `ndcg_1=3,2=9`), or one
of the two measures rearank adds beside it: Judged@k and MRR@k (`recip_rank` on the top k docs).
`parse_measures` turns the texts of `-m` into them, checking every parameter first (a bad one makes
pytrec_eval abort the process). Nothing heavy is imported here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rearank_cli.errors import InputError

# trec_eval 9.0.x's measure table in the order it prints measures: the whole of `-m all_trec`.
TREC_ORDER = (
    "runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "map", "gm_map", "Rprec", "bpref", "recip_rank",
    "iprec_at_recall", "P", "relstring", "recall", "infAP", "gm_bpref", "Rprec_mult", "utility", "11pt_avg",
    "binG", "G", "ndcg", "ndcg_rel", "Rndcg", "ndcg_cut", "map_cut", "relative_P", "success", "set_P",
    "set_relative_P", "set_recall", "set_map", "set_F", "num_nonrel_judged_ret",
)
# trec_eval's nicknames for sets of measures (`official` is what it prints without -m).
NICKNAMES = {
    "all_trec": TREC_ORDER,
    "official": TREC_ORDER[:12],
    "set": ("runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "utility", "set_P", "set_relative_P",
            "set_recall", "set_map", "set_F"),
}
# families without parameters (trec_eval ignores any given; rearank refuses them).
PLAIN = (
    "runid", "num_q", "num_ret", "num_rel", "num_rel_ret", "num_nonrel_judged_ret", "map", "gm_map", "Rprec",
    "bpref", "recip_rank", "infAP", "gm_bpref", "binG", "set_P", "set_relative_P", "set_recall", "set_map",
)
_TREC_CUTOFFS = (5, 10, 15, 20, 30, 100, 200, 500, 1000)
# cutoff families (one value per cutoff) and the cutoffs trec_eval uses when none is given.
CUTOFF = {
    "P": _TREC_CUTOFFS, "recall": _TREC_CUTOFFS, "ndcg_cut": _TREC_CUTOFFS, "map_cut": _TREC_CUTOFFS,
    "relative_P": _TREC_CUTOFFS, "success": (1, 5, 10),
}
# families with one value per float parameter (named with 2 decimals), and their defaults.
POINTS = {
    "iprec_at_recall": tuple(f"{i / 10:g}" for i in range(11)),
    "Rprec_mult": tuple(f"{i / 5:g}" for i in range(1, 11)),
}
_NUM = r"-?(?:\d+\.?\d*|\.\d+)"
_POS = r"(?:\d+\.?\d*|\.\d+)"
# families with one value whose parameters change it; trec_eval then names it `family_PARAMS`.
SINGLE = {  # family -> (parameter syntax, example)
    "ndcg": (rf"-?\d+={_NUM}(?:,-?\d+={_NUM})*", "ndcg.1=3,2=9 (label=gain pairs)"),
    "ndcg_rel": (rf"-?\d+={_NUM}(?:,-?\d+={_NUM})*", "ndcg_rel.1=3,2=9"),
    "Rndcg": (rf"-?\d+={_NUM}(?:,-?\d+={_NUM})*", "Rndcg.1=3,2=9"),
    "G": (rf"-?\d+={_NUM}(?:,-?\d+={_NUM})*", "G.1=3,2=9"),
    "utility": (rf"{_NUM},{_NUM},{_NUM},{_NUM}", "utility.2,-1,0,0 (4 coefficients)"),
    "11pt_avg": (rf"{_POS}(?:,{_POS})*", "11pt_avg..25,.5,.75 (recall points)"),
    "set_F": (_POS, "set_F.0.5 (beta)"),
    "relstring": (r"[1-9]\d*", "relstring.20 (docs shown)"),
}
TEXT = ("runid", "relstring")  # not numbers: the run's tag, and a query's top labels as a string
# measures trec_eval -q does not print per query
SUMMARY_ONLY = ("runid", "num_q", "gm_map", "gm_bpref")
GM_FLOOR = 1e-5  # trec_eval's MIN_GEO_MEAN: gm_map and gm_bpref average log(max(value, 1e-5))
JUDGED = "judged"
# short forms: name@k -> family with cutoff k; bare name -> plain measure.
SHORT_CUT = {"ndcg": "ndcg_cut", "map": "map_cut", "r": "recall", "recall": "recall", "p": "P",
             "mrr": "recip_rank", "judged": JUDGED, "success": "success"}
SHORT_PLAIN = {"ndcg": "ndcg", "map": "map", "mrr": "recip_rank"}
DISPLAY = {"ndcg_cut": "nDCG@{}", "map_cut": "MAP@{}", "recall": "R@{}", "P": "P@{}", "recip_rank": "MRR@{}",
           JUDGED: "Judged@{}", "success": "Success@{}", "ndcg": "nDCG", "map": "MAP"}
_FAMILIES = {name.lower(): name for name in (*TREC_ORDER, JUDGED)}


@dataclass(frozen=True)
class Measure:
    """One value line of trec_eval: a family with an optional cutoff or parameter, or MRR@k.

    `cutoff`: the cutoff of a cutoff family (P, recall, ...), Judged@k's k, or MRR@k's depth.
    `param`: one recall point or multiplier (iprec_at_recall, Rprec_mult), or the parameter string
    of a one-value family (`ndcg.1=3,2=9` -> "1=3,2=9").
    """

    family: str
    cutoff: int | None = None
    param: str | None = None

    @property
    def depth(self) -> int | None:
        """Docs kept per query before measuring (trec_eval -M): only for MRR@k."""
        return self.cutoff if self.family == "recip_rank" else None

    @property
    def result_key(self) -> str:
        """The name pytrec_eval gives this value (`ndcg_cut_10`, `iprec_at_recall_0.10`, `ndcg`)."""
        if self.cutoff is not None and not self.depth:
            return f"{self.family}_{self.cutoff}"
        if self.param is not None and self.family in POINTS:
            return f"{self.family}_{float(self.param):.2f}"
        return self.family

    @property
    def key(self) -> str:
        """trec_eval's output name (`ndcg_cut_10`, `ndcg_1=3,2=9`; MRR@10 is `recip_rank` with `-M 10`)."""
        if self.param is not None and self.family in SINGLE:
            return f"{self.family}_{self.param}"
        return self.result_key

    @property
    def name(self) -> str:
        """The display name: the common short form where there is one (`nDCG@10`)."""
        template = DISPLAY.get(self.family)
        if self.family == "recip_rank" and self.cutoff is None:
            return "MRR"
        if template is None or self.param is not None or ("{}" in template) != (self.cutoff is not None):
            return self.key
        return template.format(self.cutoff)

    @property
    def judged(self) -> bool:
        """Whether this is Judged@k, computed here rather than by trec_eval."""
        return self.family == JUDGED

    @property
    def text(self) -> bool:
        """Whether the value is text (runid, relstring) rather than a number."""
        return self.family in TEXT

    @property
    def count(self) -> bool:
        """Whether trec_eval prints it as an integer and sums it over queries (num_q, num_rel, ...)."""
        return self.family.startswith("num_")

    def trec_rank(self) -> tuple[int, float]:
        """Position in trec_eval's output order (Judged@k last, as pyserini prints it)."""
        base = TREC_ORDER.index(self.family) if self.family in TREC_ORDER else len(TREC_ORDER)
        if self.family in POINTS and self.param is not None:
            return base, float(self.param)
        return base, self.cutoff or 0


def valid_measures() -> str:
    """The accepted measure names, for error messages and --help."""
    return (
        "short forms nDCG@k, nDCG, MAP, MAP@k, R@k, P@k, MRR, MRR@k, Judged@k, Success@k; trec_eval 9.0.x "
        "names (" + ", ".join(TREC_ORDER) + "), nicknames " + ", ".join(NICKNAMES) + ", judged.k; "
        "parameters as trec_eval takes them: " + ", ".join(f"{f}.k1,k2" for f in CUTOFF)
        + ", iprec_at_recall..1,.25, Rprec_mult.0.5,2, " + ", ".join(example for _, example in SINGLE.values())
    )


def parse_measures(texts: Iterable[str]) -> list[Measure]:
    """Measures from trec_eval names or short forms, in the order given, without repeats.

    Unlike trec_eval, which keeps only the first `-m` of a family, every `-m` counts
    (`-m P.5 -m P.10` gives both).
    """
    measures: list[Measure] = []
    for text in texts:
        for part in _split_list(text):
            for measure in parse_measure(part):
                if measure not in measures:
                    measures.append(measure)
    if not measures:
        raise InputError("no measure given; valid: " + valid_measures())
    return measures


def _split_list(text: str) -> list[str]:
    """`P.5,10`, `ndcg.1=3,2=9`, `ndcg_cut_5,10` stay whole (trec_eval's lists); `nDCG@10,MAP` is two."""
    text = text.strip()
    name, dot, _ = text.partition(".")
    if (dot and name.lower() in _FAMILIES) or re.fullmatch(r"[A-Za-z0-9_]+_\d+(,\d+)+", text):
        return [text]
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_measure(text: str) -> list[Measure]:
    """One measure name (`nDCG@10`, `ndcg_cut.10`, `P.5,10`, `ndcg.1=3,2=9`, `P`, `all_trec`) -> its measures."""
    short = re.fullmatch(r"([A-Za-z]+)@(\d+)", text)
    if short and short.group(1).lower() in SHORT_CUT:
        return [Measure(SHORT_CUT[short.group(1).lower()], _cutoff(short.group(2), text))]
    if text.lower() in SHORT_PLAIN and text not in _FAMILIES.values():
        return [Measure(SHORT_PLAIN[text.lower()])]
    if text in NICKNAMES:
        return [m for family in NICKNAMES[text] for m in _whole_family(family, text)]
    family = _FAMILIES.get(text.lower())
    if family is not None:
        return _whole_family(family, text)
    name, dot, params = text.partition(".")
    family = _FAMILIES.get(name.lower()) if dot else None
    if family is None:
        trec = re.fullmatch(r"([A-Za-z0-9_]+?)_(\d+(?:,\d+)*)", text)  # ndcg_cut_10: pytrec_eval's spelling
        family = _FAMILIES.get(trec.group(1).lower()) if trec else None
        if trec is None or (family not in CUTOFF and family != JUDGED):
            raise InputError(f"unknown measure {text!r}; valid: {valid_measures()}")
        params = trec.group(2)
    return _with_params(family, params, text)


def _whole_family(family: str, text: str) -> list[Measure]:
    if family == JUDGED:
        raise InputError(f"measure {text!r} needs a cutoff, e.g. Judged@10 or judged.10")
    if family in CUTOFF:
        return [Measure(family, k) for k in CUTOFF[family]]
    if family in POINTS:
        return [Measure(family, param=p) for p in POINTS[family]]
    return [Measure(family)]


def _with_params(family: str, params: str, text: str) -> list[Measure]:
    """The measures of `family.params`, the parameters checked first (bad ones crash pytrec_eval)."""
    if family in PLAIN:
        raise InputError(f"measure {text!r}: {family} takes no parameter (valid: {family})")
    if family in SINGLE:
        syntax, example = SINGLE[family]
        if not re.fullmatch(syntax, params):
            raise InputError(f"measure {text!r}: bad parameter {params!r}; expected e.g. {example}")
        return [Measure(family, param=params)]
    tokens = params.split(",")
    if family in POINTS:
        bad = [t for t in tokens if not re.fullmatch(_POS, t)]
        if bad:
            raise InputError(f"measure {text!r}: parameter {bad[0]!r} is not a number >= 0")
        by_key = {f"{float(t):.2f}": f"{float(t):g}" for t in reversed(tokens)}
        return [Measure(family, param=p) for p in dict.fromkeys(by_key[f"{float(t):.2f}"] for t in tokens)]
    cutoffs = [_cutoff(t, text) for t in tokens]
    return [Measure(family, k) for k in dict.fromkeys(cutoffs)]


def _cutoff(digits: str, text: str) -> int:
    """A cutoff as trec_eval reads it (`23.4` is 23); at least 1."""
    if not re.fullmatch(r"\d+(\.\d*)?", digits):
        raise InputError(f"measure {text!r}: cutoff {digits!r} is not a positive integer")
    value = int(float(digits))
    if value < 1:
        raise InputError(f"measure {text!r}: the cutoff must be at least 1")
    return value



def trec_measures(measures: Sequence[Measure]) -> list[Measure]:
    """Measures in trec_eval's print order; refuses two measures that trec_eval names alike."""
    ordered = sorted(measures, key=Measure.trec_rank)
    keys = [m.key for m in ordered]
    clash = sorted({k for k in keys if keys.count(k) > 1})
    if clash:
        raise InputError(f"--format trec cannot show both MRR and MRR@k (trec_eval names both {clash[0]!r}); "
                         "use --format table or json")
    return ordered
