"""New S3 keys for workload identities, on an operator's request; the old keys stop at once.

The new keys go to OpenBao under the operator's `rotate-s3-keys` token, which may write them
and nothing else; the rotation is audited with the operator as actor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mlsec_platform.identities.catalog import S3_IDENTITIES
from mlsec_platform.ops.operator import operator_command
from mlsec_platform.ops.refusals import UnknownName
from mlsec_platform.settings import PlatformSettings, Profile
from mlsec_platform.stack.bootstrap import rotate_s3_keys
from mlsec_platform.stack.supervisor import Supervisor


class UnknownIdentity(UnknownName):
    """No S3 identity of that name."""


def rotate_identity_keys(
    settings: PlatformSettings, identities: Sequence[str], echo: Callable[[str], None]
) -> dict[str, str]:
    """New keys for ``identities`` (none given: all); returns the new key id by identity."""
    known = [i.name for i in S3_IDENTITIES]
    unknown = sorted(set(identities) - set(known))
    if unknown:
        raise UnknownIdentity(f"unknown identity {', '.join(unknown)}; known: {', '.join(known)}")
    with operator_command(settings, "rotate-s3-keys") as session:
        rotated = rotate_s3_keys(settings, list(identities) or known, session.vault)
        session.audit.emit("s3.keys_rotated", {"new_key_ids": rotated})
    for name, key_id in rotated.items():
        echo(f"{name:<10} new key {key_id}, old keys deleted")
    if "pipeline" in rotated and settings.profile is Profile.LOCAL:
        supervisor = Supervisor(settings, progress=echo)
        if supervisor.sail.is_running():  # it holds the deleted key: restart it with the new
            supervisor.ensure_sail()
    return rotated
