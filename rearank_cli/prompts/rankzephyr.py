"""RankZephyr (castorini/rank_zephyr_7b_v1_full) and RankVicuna (castorini/rank_vicuna_7b_v1) as
castorini/rank_llm main (1b3cabb) renders `rank_zephyr_template.yaml` and reads their answers.

A system message and one user turn: the instruction, each passage as an `[i] text` line, the closing
instruction. Passages are cut to 300 words; thinking is off (`enable_thinking: false`, which rank_llm
passes to every chat template). The answer's ids are read after the last `</think>`. The strings are exact.
"""

from __future__ import annotations

from rearank_cli.prompts.rankllm_chat import rankllm_model

SYSTEM = "You are RankLLM, an intelligent assistant that can rank passages based on their relevancy to the query"

FAMILY = rankllm_model(
    "rankzephyr",
    "RankZephyr / RankVicuna as rank_llm renders rank_zephyr_template.yaml (castorini/rank_llm 1b3cabb).",
    SYSTEM, thinking=False, max_tokens=128,
)
