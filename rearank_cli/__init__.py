"""rearank: LLM reasoning rerankers (REARANK) on TREC run files."""

__version__ = "0.1.0"
