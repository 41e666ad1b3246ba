"""`python -m rearank_cli.settings OUT.manifest.json > run.toml`: a manifest's settings as a `--config` file."""

from __future__ import annotations

import sys

from rearank_cli.errors import InputError
from rearank_cli.settings.files import manifest_settings_toml


def main(argv: list[str]) -> int:
    """Print the TOML of the `settings` block of the manifest named by the one argument."""
    if len(argv) != 1:
        sys.stderr.write("usage: python -m rearank_cli.settings MANIFEST.json > SETTINGS.toml\n")
        return 2
    try:
        sys.stdout.write(manifest_settings_toml(argv[0]))
    except InputError as exc:
        sys.stderr.write(f"rearank: error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
