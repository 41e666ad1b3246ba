"""The settings of `rearank eval`, `report`, `index`, `retrieve`, `augment` and `doctor`, declared once.

(`rerank` and `merge` are in `settings.rerank`, the backends in `settings.backends`, `train` in
`settings.train`.)
"""

from __future__ import annotations

from dataclasses import dataclass

from rearank_cli.settings.base import REQUIRED, Settings, setting
from rearank_cli.settings.rerank import BACKENDS, RerankOptions

#: `rearank eval --format` (the renderer's layouts)
EVAL_FORMATS = ("table", "json", "trec")
#: `rearank augment --format`
AUGMENT_FORMATS = ("jsonl", "parquet")
#: what `--measure` means when not given (eval, report)
DEFAULT_MEASURES = ("nDCG@10", "nDCG@5", "MAP@1000", "R@100", "Judged@10")


@dataclass(frozen=True, kw_only=True)
class EvalOptions(Settings):
    """`rearank eval`."""

    command = "eval"

    runs: list[str] = setting(REQUIRED, metavar="RUN", show_default=False,
                              help="The TREC run files to score (`-` = stdin; gzip is detected).")
    qrels: str = setting(REQUIRED, "--qrels", help="The qrels: TREC (qid 0 docid rel; graded labels) or BEIR "
                         "TSV (query-id corpus-id score), one layout per file.")
    measures: list[str] | None = setting(
        None, "-m", "--measure", show_default=False,
        help="A measure (repeatable): any trec_eval 9.0.x measure with its parameters as trec_eval takes them "
        "(ndcg_cut.10, map, recall.100, P.5,10, ndcg.1=3,2=9, iprec_at_recall..25, utility.2,-1,0,0, ...), "
        "the nicknames all_trec, official and set, or short forms (nDCG@10, MAP, MAP@1000, R@100, P@10, "
        f"MRR@10, Judged@10). [default: {' '.join(DEFAULT_MEASURES)}]")
    level: int = setting(1, "-l", "--level",
                         help="The lowest label that counts as relevant for binary measures (MAP, recall, P, "
                         "MRR), as trec_eval -l; DL convention: 2. nDCG always uses the graded labels.")
    per_query: bool = setting(False, "-q", "--per-query", help="Also print per-query values (and deltas).")
    max_docs: int | None = setting(None, "-M", "--max-docs", show_default=False,
                                   help="Only the top N docs of each query (trec_eval's order) count, "
                                   "for every measure, as trec_eval -M.")
    exclude: str | None = setting(
        None, "--exclude", show_default=False,
        help="The (qid, docid) pairs dropped from every run before scoring (BRIGHT's excluded_ids): a two-column "
        "'qid docid' file or BRIGHT's examples JSONL (fields id, excluded_ids). The count goes to stderr.")
    complete: bool = setting(False, "-c", help="As trec_eval -c, for --format trec: a query missing from a run "
                             "counts as an empty ranking in the means; without it trec_eval's layout "
                             "averages over the queries the run answers, as trec_eval does. The table "
                             "and json always aggregate as trec_eval -c.")
    baseline: str | None = setting(
        None, "--baseline", help="The run to compare the others with: win/tie/loss, paired t-test and randomization "
        "test per measure (* and + mark p < 0.05).")
    fmt: str = setting("table", "--format", choices=EVAL_FORMATS,
                       help="The layout: table, json or trec (trec_eval's own).")
    output: str = setting("-", "-o", "--output", help="The file to write (`-` = stdout), atomically.")
    permutations: int = setting(10_000, "--permutations", help="The permutations of the randomization test.")
    seed: int = setting(0, "--seed", help="The seed of the randomization test.")
    jobs: int = setting(1, "--jobs", help="Accepted and ignored, so older command lines still run: "
                        "runs are evaluated in one process (a second one gained too little to keep).")


@dataclass(frozen=True, kw_only=True)
class ReportOptions(Settings):
    """`rearank report`."""

    command = "report"

    runs: list[str] = setting(REQUIRED, metavar="RUN", show_default=False,
                              help="Reranked TREC run(s), shown side by side. A run that an interrupted job never "
                              "wrote is rebuilt from its journal (RUN.trace.jsonl).")
    qrels: str = setting(REQUIRED, "--qrels", help="The qrels (graded labels).")
    baseline: str | None = setting(
        None, "--baseline", help="The first-stage run to compare with [default: the run in RUN.manifest.json].")
    traces: list[str] | None = setting(
        None, "--trace", show_default=False,
        help="The journal of a run (repeatable, in the order of the runs; with one RUN, every journal of it, e.g. of "
        "its shards) [default: RUN.trace.jsonl when present; for a merged run, the shards' journals its merge "
        "manifest records].")
    topics: str | None = setting(None, "--topics", help="The query texts [default: from the manifest].")
    corpus: str | None = setting(None, "--corpus", help="The passage texts: a JSONL(.gz) corpus or a Lucene index.")
    candidates: str | None = setting(None, "--candidates",
                                     help="A rank_llm/RankGPT candidates JSON (query and passage texts).")
    measures: list[str] | None = setting(
        None, "-m", "--measure", show_default=False,
        help="A measure (repeatable, eval's names); the first is the main one of the per-query charts. "
        f"[default: eval's defaults, {DEFAULT_MEASURES[0]} first]")
    level: int = setting(1, "-l", "--level", help="The lowest relevant label (trec_eval -l), as in `rearank eval`.")
    top_k: int = setting(10, "--top-k", help="How many final docs are listed per query.")
    permutations: int = setting(10_000, "--permutations", help="The permutations of the randomization test.")
    seed: int = setting(0, "--seed", help="The seed of the randomization test.")
    output: str = setting("report.html", "-o", "--output", help="The HTML file to write (atomically).")


@dataclass(frozen=True, kw_only=True)
class IndexOptions(Settings):
    """`rearank index`."""

    command = "index"

    corpus: list[str] = setting(
        REQUIRED, show_default=False,
        help='The corpus JSONL(.gz) files: pyserini {"id","contents"} or BEIR {"_id","title","text"}.')
    output: str = setting(REQUIRED, "--output", "-o", help="The index folder to create (replaced if it is an index).")
    threads: int | None = setting(None, "--threads", min=1,
                                  help="The indexing threads (one per corpus file) [default: CPUs available].")
    fields: list[str] = setting([], "--fields", help="The fields indexed on their own: `title` for BEIR multifield (as "
                                "Anserini's multifield regressions); default is BEIR flat.")


@dataclass(frozen=True, kw_only=True)
class RetrieveOptions(Settings):
    """`rearank retrieve`."""

    command = "retrieve"

    index: str = setting(REQUIRED, "--index", help="The Lucene index directory, or a pyserini prebuilt index name.")
    topics: str = setting(REQUIRED, "--topics",
                          help="The topics: qid<TAB>query TSV, BEIR queries.jsonl (gzip ok, `-` = stdin), "
                               "or a pyserini topic set name.")
    k: int = setting(100, "-k", "--hits", min=1, help="How many hits to keep per query.")
    k1: float = setting(0.9, "--k1", min=0.0, help="The BM25 k1 parameter (term frequency saturation).")
    b: float = setting(0.4, "--b", min=0.0, max=1.0, help="The BM25 b parameter (length normalization).")
    threads: int | None = setting(None, "--threads", min=1, help="The search threads [default: CPUs available].")
    remove_query: bool = setting(False, "--remove-query", help="Drop hits whose docid equals the qid (BEIR).")
    tag: str = setting("bm25", "--tag", help="The run tag written in the 6th column.")
    output: str = setting("-", "--output", "-o", help="The TREC run to write (`-` = stdout); a file also gets "
                          "OUT.manifest.json.")


@dataclass(frozen=True, kw_only=True)
class AugmentOptions(Settings):
    """`rearank augment` (defaults follow spec section 6)."""

    command = "augment"

    run: str = setting(REQUIRED, help="The first-stage TREC run ('-' = stdin): it defines queries and doc order.")
    qrels: str = setting(REQUIRED, "--qrels", help="The graded qrels (qid 0 docid rel).")
    topics: str | None = setting(None, "--topics", help="The query texts (TSV or BEIR queries.jsonl).")
    corpus: str | None = setting(None, "--corpus", help="The doc texts: a JSONL(.gz) corpus or a Lucene index.")
    candidates: str | None = setting(
        None, "--candidates", help="A rank_llm/RankGPT candidates JSON: query and doc texts (instead of both).")
    samples_per_query: int = setting(50, "--samples-per-query", min=1, help="The distinct subsets per query.")
    window: int = setting(RerankOptions.window, "--window", min=1, help="How many docs each sample holds.")
    depth: int = setting(RerankOptions.depth, "--depth", min=1, help="Sample from the run's top DEPTH docs.")
    min_init_ndcg: float = setting(0.1, "--min-init-ndcg", min=0.0, max=1.0,
                                   help="Drop samples whose initial nDCG@10 is below this.")
    min_headroom: float = setting(0.0, "--min-headroom", min=0.0, max=1.0,
                                  help="Drop samples whose r_best - r_init is below this (0 keeps all; any value "
                                       "above 0 drops those already in their ideal order).")
    prompt: str = setting(RerankOptions.prompt, "--prompt", metavar="NAME",
                          help="The prompt family of the `prompt` field (see the docs' prompt families).")
    seed: int = setting(42, "--seed", help="Random seed (per-query seeds derive from it and the qid).")
    fmt: str = setting("jsonl", "--format", choices=AUGMENT_FORMATS,
                       help="The format: jsonl (TRL: prompt + extra columns) or parquet (VeRL).")
    skip_short: bool = setting(False, "--skip-short",
                               help="Skip queries with fewer candidates than --window (default: use them).")
    skip_missing: bool = setting(False, "--skip-missing",
                                 help="Drop candidate docs that have no text instead of failing.")
    output: str = setting("-", "-o", "--output", help="The file to write ('-' = stdout; .gz compresses).")
    summary: str | None = setting(
        None, "--summary", help="The summary JSON to write (default: OUTPUT.summary.json when OUTPUT is a file).")


@dataclass(frozen=True, kw_only=True)
class DoctorOptions(Settings):
    """`rearank doctor`."""

    command = "doctor"

    backend: str = setting(RerankOptions.backend, "--backend", choices=BACKENDS,
                           help="The backend to check for: vllm, hf or openai.")
    model: str | None = setting(
        None, "--model", deprecated=("-m",),
        help="The model to look for: a local folder, a .gguf file or a hub id in the HF cache (nothing is "
        f"downloaded); with openai, the name the server must serve. [default: rerank's {RerankOptions.model}]")
    base_url: str | None = setting(None, "--base-url", envvar="OPENAI_BASE_URL",
                                   help="The OpenAI-compatible server to check (GET /models).")
    output: str = setting(".", "--output", "-o", help="The folder outputs go to (free space, write access).")
    fmt: str = setting("text", "--format", choices=("text", "json"), help="The format: text (one screen) or json.")
