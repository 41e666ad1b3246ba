"""`python -m rearank_cli` entry point."""

from rearank_cli.cli import main

if __name__ == "__main__":  # guarded: vLLM's engine processes start with `spawn`, which re-imports __main__
    main()
