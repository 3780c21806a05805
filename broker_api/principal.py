"""Who is asking: the verified identity a request's token carries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlsec_platform.catalog.governance import Purpose, Sensitivity

#: Claims every broker token must carry (besides iss, aud, exp, nbf, iat).
REQUIRED_CLAIMS = ("sub", "groups", "project", "purpose", "data_clearance")
#: The entitlement that allows turning tokens back into clear values (with a stated reason).
REVEAL = "reveal"


@dataclass(frozen=True)
class Principal:
    subject: str
    groups: tuple[str, ...]
    project: str
    purpose: Purpose
    clearance: Sensitivity
    entitlements: frozenset[str] = frozenset()
    token_id: str | None = None
    #: The thumbprint (``x5t#S256``) of the client certificate the token is bound to: the
    #: token is accepted only over a connection that presents that certificate (RFC 8705).
    certificate: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def audit_fields(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "groups": list(self.groups),
            "project": self.project,
            "purpose": self.purpose.value,
            "clearance": self.clearance.label,
        }
