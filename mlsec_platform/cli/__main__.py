"""``python -m mlsec_platform.cli``, as the `mlsec` command."""

from mlsec_platform.cli import run

run()
