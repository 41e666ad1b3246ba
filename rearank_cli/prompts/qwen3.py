"""A zero-shot thinking model (Qwen3) as castorini/rank_llm main (1b3cabb) renders
`qwen_thinking_template.yaml` with thinking on.

A system message with step-by-step ranking instructions and one user turn: the instruction, each passage as
an `[i] text` line, the closing instruction. Passages are cut to 300 words. Thinking is on
(`enable_thinking: true`: the hf and vllm backends pass it to the model's chat template). The answer's ids
are read after the last `</think>`. The strings are exact.
"""

from __future__ import annotations

from rearank_cli.prompts.rankllm_chat import rankllm_model

SYSTEM = (
    "You are RankLLM, an intelligent assistant that can rank passages based on their relevancy to the "
    "query.\n"
    "Given a query and a list of passages, your task is to re-rank these passages based on their "
    "relevance to the query.\n"
    "\n"
    "Please perform the following steps:\n"
    "1. **Understand the Query**: First, carefully read and understand the user's query to identify the "
    "core information need.\n"
    "2. **Analyze Each Passage**: For each passage, critically evaluate its content and determine how "
    "well it addresses the query. Consider factors like:\n"
    "    - Directness of the answer\n"
    "    - Completeness of the information\n"
    "    - Presence of supporting evidence or details\n"
    "    - Absence of irrelevant or distracting information\n"
    "3. **Compare and Contrast**: Compare the passages against each other. Identify which passages are "
    "more relevant and why. Note any subtle differences in relevance.\n"
    "4. **Reasoning for Ranking**: Explicitly state your reasoning for the rank you assign to each "
    "passage. Explain why a passage is ranked higher or lower than others. This step-by-step thought "
    "process is crucial.\n"
    "5. **Assign Ranks**: Based on your analysis and reasoning, assign a unique rank to each passage, "
    "starting from 1 for the most relevant.\n"
    "\n"
    "**Output Format:**\n"
    "Your final output must be a list of ranks, corresponding to the original order of the passages. For "
    "example, if there are 3 passages, and you decide the second passage is most relevant, the first is "
    "second most relevant, and the third is least relevant, your output should be:\n"
    "[2] > [1] > [3]\n"
    "\n"
    "No other text or explanation should be present in the final output, only the list of ranks.\n"
)

FAMILY = rankllm_model(
    "qwen3",
    "A zero-shot thinking model (Qwen3) as rank_llm renders qwen_thinking_template.yaml (1b3cabb).",
    SYSTEM, thinking=True, max_tokens=10090,
)
