"""GRPO training of a reasoning reranker: the settings, batch plan and TRL/PEFT options (`grpo`) and the
REARANK reward (`reward`, also VeRL's `compute_score`). Importing this package imports nothing else, so the
reward loads with the standard library alone."""
