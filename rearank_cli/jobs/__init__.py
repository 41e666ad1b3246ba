"""The jobs layer: one module per command, the only code that touches files, signals and manifests."""
