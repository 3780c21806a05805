"""`mlsec`: the platform's command; each command reads its options and calls ops/ or stack/.

The commands live by subject in this package's modules; importing them registers them on
:data:`main`.
"""

from mlsec_platform.cli import access, data, servers  # noqa: F401 - registers the commands
from mlsec_platform.cli.base import _Command, main, run

__all__ = ["_Command", "main", "run"]
