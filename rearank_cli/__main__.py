"""`python -m rearank_cli` entry point."""

from rearank_cli.cli import main

main()
