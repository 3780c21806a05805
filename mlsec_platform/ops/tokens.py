"""Identity tokens an operator issues under its `issue` command token: gateway or broker tokens.

A gateway token carries scopes; a broker token carries groups, project, purpose, clearance and
optionally entitlements. Either is bound to the client certificate it must be presented with
(``--cert``: the JWT's ``cnf``, RFC 8705). The option names in the refusals are those of
``mlsec token issue``. Each issued token is an audit event (``token.issued``) with the operator
as actor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import hvac
from cryptography import x509

from mlsec_platform.identities.tokens import certificate_thumbprint
from mlsec_platform.ops.operator import operator_command
from mlsec_platform.ops.refusals import NotApplicable
from mlsec_platform.settings import PlatformSettings

#: ``broker_api.identity.BROKER_AUDIENCE``, not imported: the broker package is slow to import.
BROKER_AUDIENCE = "mlsec-broker"


class TokenOptionsMismatch(NotApplicable):
    """The options given do not make a token for this audience."""


@dataclass(frozen=True)
class TokenRequest:
    """What the token is for: its subject, audience and the claims of that audience."""

    subject: str
    certificate: Path | None = None
    audience: str = "mlsec-gateway"
    scopes: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    project: str | None = None
    purpose: str | None = None
    clearance: str | None = None
    entitlements: tuple[str, ...] = ()
    ttl: int | None = None

    def certificate_pem(self) -> str:
        """The client certificate the token is bound to (PEM), read and checked."""
        if self.certificate is None:
            raise TokenOptionsMismatch("a token is bound to a client certificate: give --cert")
        try:
            pem = self.certificate.read_text()
            x509.load_pem_x509_certificate(pem.encode())
        except (OSError, UnicodeDecodeError, ValueError):
            raise TokenOptionsMismatch(
                f"--cert {self.certificate}: not a readable PEM certificate "
                "(`mlsec cert issue` writes one)"
            ) from None
        return pem

    def check(self) -> None:
        """Refuse broker claims on a gateway token, scopes on a broker token, missing claims."""
        broker_options = {
            "--group": self.groups,
            "--project": self.project,
            "--purpose": self.purpose,
            "--clearance": self.clearance,
            "--entitlement": self.entitlements,
        }
        if self.audience == BROKER_AUDIENCE:
            missing = [o for o, v in broker_options.items() if not v and o != "--entitlement"]
            if missing:
                raise TokenOptionsMismatch(f"a broker token needs {', '.join(missing)}")
            if self.scopes:
                raise TokenOptionsMismatch("--scope is for gateway tokens, not broker tokens")
        elif given := [o for o, v in broker_options.items() if v]:
            raise TokenOptionsMismatch(
                f"{', '.join(given)}: for broker tokens (--audience mlsec-broker)"
            )


def issue_operator_token(settings: PlatformSettings, request: TokenRequest) -> str:
    """The signed token of ``request`` (checked first); its lifetime defaults to the settings'."""
    request.check()
    certificate = request.certificate_pem()
    ttl_seconds = request.ttl or settings.upload_token_ttl
    if ttl_seconds > settings.token_max_lifetime:  # the services would refuse it
        raise TokenOptionsMismatch(
            f"--ttl {ttl_seconds} is over the {settings.token_max_lifetime} s the gateway and "
            "the broker accept (MLSEC_TOKEN_MAX_LIFETIME)"
        )
    with operator_command(settings, "issue") as session:
        token = sign_token(session.vault, request, ttl_seconds, certificate)
        session.audit.emit(
            "token.issued",
            {
                "subject": request.subject,
                "certificate": certificate_thumbprint(certificate),
                "audience": request.audience,
                "ttl_seconds": ttl_seconds,
                "scopes": list(request.scopes),
                "groups": list(request.groups),
                "project": request.project,
                "purpose": request.purpose,
                "clearance": request.clearance,
                "entitlements": list(request.entitlements),
            },
        )
    return token


def sign_token(
    vault: hvac.Client, request: TokenRequest, ttl_seconds: int, certificate: str
) -> str:
    """``request`` signed by the issuer key, through ``vault`` (which may sign with it), bound
    to ``certificate`` (PEM)."""
    if request.project and request.purpose and request.clearance:
        from broker_api.identity import issue_broker_token

        return issue_broker_token(
            vault,
            subject=request.subject,
            groups=request.groups,
            project=request.project,
            purpose=request.purpose,
            clearance=request.clearance,
            entitlements=request.entitlements,
            ttl_seconds=ttl_seconds,
            certificate=certificate,
            audience=request.audience,
        )
    from mlsec_platform.identities.tokens import issue_token

    return issue_token(
        vault,
        subject=request.subject,
        audience=request.audience,
        ttl_seconds=ttl_seconds,
        certificate=certificate,
        claims={"scope": list(request.scopes)},
    )


def policy_vocabulary(settings: PlatformSettings) -> list[str]:
    """What a broker token may carry under the policy the broker would load now: its groups
    (with the role each selects), projects, purposes and clearances (for `token issue --help`)."""
    from broker_api.policy.files import load_policy
    from mlsec_platform.catalog.governance import Purpose, Sensitivity

    policy = load_policy(settings.broker_policy_dir)
    groups = sorted(
        f"{group} ({role.name})" for role in policy.roles for group in sorted(role.groups)
    )
    return [
        f"The broker's policy {policy.version} knows:",
        f"groups: {', '.join(groups)}",
        f"projects: {', '.join(sorted(policy.projects))}",
        f"purposes: {', '.join(p.value for p in Purpose)}",
        f"clearances: {', '.join(s.label for s in Sensitivity)}",
    ]
