"""The `vllm` backend (see `backends.vllm.backend`)."""

from rearank_cli.backends.vllm.backend import VllmBackend

__all__ = ["VllmBackend"]
