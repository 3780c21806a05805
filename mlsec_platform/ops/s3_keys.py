"""New S3 keys for workload identities, on an operator's request; the old keys stop at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mlsec_platform.identities.catalog import S3_IDENTITIES
from mlsec_platform.ops.refusals import UnknownName
from mlsec_platform.settings import PlatformSettings
from mlsec_platform.stack.bootstrap import rotate_s3_keys


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
    rotated = rotate_s3_keys(settings, list(identities) or known)
    for name, key_id in rotated.items():
        echo(f"{name:<10} new key {key_id}, old keys deleted")
    return rotated
