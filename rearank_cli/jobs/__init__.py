"""The jobs layer: one module per command (files -> the core or the API -> files).

Only the modules here read a command's inputs, write its outputs, manifests and provenance, and handle
SIGINT/SIGTERM. Nothing is imported here, so importing one job loads only what that job needs.
"""
