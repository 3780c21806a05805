"""Identity tokens signed by an Ed25519 key that never leaves OpenBao (transit).

The issuer asks OpenBao to sign the JWT's signing input; verifiers read only the public keys
(``transit/keys/mlsec-issuer``). Each key version is a ``kid`` (``mlsec-issuer:v<n>``), so the
key rotates without invalidating tokens signed by a version that is still published.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import hvac
import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding
from jwt.exceptions import InvalidJTIError, InvalidSubjectError

from mlsec_platform.errors import MlsecError

ISSUER_KEY = "mlsec-issuer"
ISSUER = "mlsec-local"
ALGORITHM = "EdDSA"
#: The longest lifetime (``exp - iat``) a verifier accepts unless told otherwise: a stolen
#: token is worth at most this long, whatever lifetime its issuer wrote into it.
MAX_LIFETIME_SECONDS = 3600
#: The registered claims that are instants: JSON numbers only (RFC 7519 NumericDate).
TIME_CLAIMS = ("exp", "nbf", "iat")
#: The confirmation claim (RFC 7800) and its member that binds a token to the client
#: certificate it must be presented with (RFC 8705: base64url SHA-256 of the DER certificate).
CONFIRMATION = "cnf"
THUMBPRINT = "x5t#S256"


class InvalidToken(MlsecError):
    """The request's token is missing, malformed, expired, not yet valid or wrongly signed."""

    http_status = 401


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def certificate_thumbprint(certificate: bytes | str) -> str:
    """The RFC 8705 thumbprint (``x5t#S256``) of a certificate, given as PEM or DER."""
    if isinstance(certificate, str):
        certificate = certificate.encode()
    if certificate.lstrip().startswith(b"-----BEGIN"):
        certificate = x509.load_pem_x509_certificate(certificate).public_bytes(Encoding.DER)
    return _b64url(hashlib.sha256(certificate).digest())


def bound_thumbprint(claims: Mapping[str, Any]) -> str:
    """The thumbprint of the certificate a token is bound to; InvalidToken when it is bound
    to none (every token of the platform's services is)."""
    cnf = claims.get(CONFIRMATION)
    thumbprint = cnf.get(THUMBPRINT) if isinstance(cnf, dict) else None
    if not isinstance(thumbprint, str) or not thumbprint:
        raise InvalidToken(
            "token is not bound to a client certificate (claim 'cnf' with 'x5t#S256'): "
            "issue it for your certificate (`mlsec token issue --cert`)"
        )
    return thumbprint


def check_binding(claims: Mapping[str, Any], presented: str | None) -> None:
    """Refuse (InvalidToken) a token presented over a connection whose client certificate is
    not the one it is bound to: a stolen token is useless without its certificate's key."""
    check_presented(bound_thumbprint(claims), presented)


def check_presented(bound: str, presented: str | None) -> None:
    """Refuse (InvalidToken) unless ``presented`` is the ``bound`` thumbprint."""
    if presented is None:
        raise InvalidToken("no client certificate was presented with this token")
    if not hmac.compare_digest(bound.encode(), presented.encode()):
        raise InvalidToken("token is bound to another client certificate")


def issue_token(
    vault: hvac.Client,
    *,
    subject: str,
    audience: str,
    ttl_seconds: int,
    certificate: bytes | str,
    claims: Mapping[str, Any] | None = None,
    not_before: int | None = None,
) -> str:
    """A JWT signed by the latest version of the issuer key in OpenBao transit, bound to
    ``certificate`` (PEM or DER): it is accepted only with that certificate (RFC 8705)."""
    version = vault.secrets.transit.read_key(ISSUER_KEY)["data"]["latest_version"]
    now = int(time.time())
    header = {"alg": ALGORITHM, "typ": "JWT", "kid": f"{ISSUER_KEY}:v{version}"}
    payload = {
        "iss": ISSUER,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "nbf": now if not_before is None else not_before,
        "exp": now + ttl_seconds,
        "jti": str(uuid.uuid4()),
        **(claims or {}),
        CONFIRMATION: {THUMBPRINT: certificate_thumbprint(certificate)},
    }
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, payload)
    )
    signed = vault.secrets.transit.sign_data(
        ISSUER_KEY,
        base64.b64encode(signing_input.encode()).decode(),
        key_version=version,
    )["data"]["signature"]
    # OpenBao answers "vault:v<n>:<base64 signature>".
    signature = base64.b64decode(signed.split(":", 2)[2])
    return f"{signing_input}.{_b64url(signature)}"


def transit_public_keys(vault: hvac.Client) -> dict[str, Ed25519PublicKey]:
    """kid -> public key for every published version of the issuer key."""
    keys = vault.secrets.transit.read_key(ISSUER_KEY)["data"]["keys"]
    return {
        f"{ISSUER_KEY}:v{version}": Ed25519PublicKey.from_public_bytes(
            base64.b64decode(entry["public_key"])
        )
        for version, entry in keys.items()
    }


class TokenVerifier:
    """Verifies tokens against the issuer's public keys, refreshed when an unknown kid shows up."""

    def __init__(
        self,
        fetch_keys: Callable[[], dict[str, Ed25519PublicKey]],
        *,
        audience: str,
        required_claims: tuple[str, ...] = ("sub",),
        leeway_seconds: int = 5,
        refresh_seconds: float = 300.0,
        max_lifetime_seconds: int = MAX_LIFETIME_SECONDS,
    ) -> None:
        self._fetch_keys = fetch_keys
        self._audience = audience
        self._required = required_claims
        self._leeway = leeway_seconds
        self._max_lifetime = max_lifetime_seconds
        self._refresh = refresh_seconds
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def _key(self, kid: str) -> Ed25519PublicKey:
        with self._lock:
            stale = time.monotonic() - self._fetched_at > self._refresh
            if stale or kid not in self._keys:
                self._keys = self._fetch_keys()
                self._fetched_at = time.monotonic()
            if kid not in self._keys:
                raise InvalidToken("token signed with an unknown key")
            return self._keys[kid]

    def verify(self, token: str | None) -> dict[str, Any]:
        if not token:
            raise InvalidToken("missing bearer token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("token has no key id")
        return decode_claims(
            token,
            self._key(kid),
            algorithm=ALGORITHM,
            audience=self._audience,
            issuer=ISSUER,
            leeway=self._leeway,
            require=["exp", "iat", "nbf", "iss", "aud", *self._required],
            max_lifetime=self._max_lifetime,
        )


def decode_claims(
    token: str,
    key: Any,
    *,
    algorithm: str,
    audience: str,
    issuer: str,
    leeway: int,
    require: list[str],
    max_lifetime: int,
) -> dict[str, Any]:
    """The verified claims of ``token``; every failure as InvalidToken with a client-safe
    reason. The one rule set of the gateway's and the broker's verifiers: PyJWT checks the
    signature, issuer, audience and required claims; :func:`check_claims` the rest."""
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer,
            # The instants are checked by check_claims: PyJWT takes "4102444800" for a number.
            options={
                "require": require,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidAudienceError:
        raise InvalidToken("token is for another audience") from None
    except jwt.InvalidIssuerError:
        raise InvalidToken("token from an unknown issuer") from None
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"token lacks the {exc.claim!r} claim") from None
    except jwt.InvalidSignatureError:
        raise InvalidToken("token signature does not verify") from None
    except InvalidSubjectError:
        raise InvalidToken("claim 'sub' must be a non-empty string") from None
    except InvalidJTIError:
        raise InvalidToken("claim 'jti' must be a string") from None
    except jwt.InvalidAlgorithmError:
        raise InvalidToken("token algorithm does not match its key") from None
    except jwt.PyJWTError:
        raise InvalidToken("invalid token") from None
    check_claims(claims, leeway=leeway, max_lifetime=max_lifetime)
    return claims


def _number(value: Any) -> bool:
    """A JSON number: an int of any size, or a finite float (never a bool or a string)."""
    return type(value) is int or (type(value) is float and math.isfinite(value))


def check_claims(
    claims: Mapping[str, Any], *, leeway: int, max_lifetime: int, now: float | None = None
) -> None:
    """Refuse (InvalidToken) what a signature-checked token may still get wrong: instants that
    are not JSON numbers, expiry, a start in the future, a lifetime (``exp - iat``) over
    ``max_lifetime`` seconds, more than one audience (a token for one service must not open
    another), an empty subject."""
    for name in TIME_CLAIMS:
        if name in claims and not _number(claims[name]):
            raise InvalidToken(f"claim {name!r} must be a number (seconds since the epoch)")
    for name in ("exp", "iat"):  # a lifetime needs both ends
        if name not in claims:
            raise InvalidToken(f"token lacks the {name!r} claim")
    now = time.time() if now is None else now
    if claims["exp"] <= now - leeway:
        raise InvalidToken("token expired")
    if claims.get("nbf", claims["iat"]) > now + leeway or claims["iat"] > now + leeway:
        raise InvalidToken("token not valid yet")
    if claims["exp"] - claims["iat"] > max_lifetime:
        raise InvalidToken(f"token lifetime (exp - iat) is over {max_lifetime} seconds")
    audience = claims.get("aud")
    if isinstance(audience, list) and len(audience) != 1:
        raise InvalidToken("token must name exactly one audience")
    subject = claims.get("sub")
    if "sub" in claims and (not isinstance(subject, str) or not subject):
        raise InvalidToken("claim 'sub' must be a non-empty string")


def granted_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """The scopes a token grants, each matched whole (never as a substring): its ``scope``
    claim as a list of names, or one string of names separated by single spaces (RFC 6749);
    none when the claim is absent. Any other shape is an InvalidToken, not a server error."""
    value = claims.get("scope", [])
    names = (value.split(" ") if value else []) if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise InvalidToken(
            "claim 'scope' must be a list of scope names or a string of them separated by "
            "single spaces"
        )
    return frozenset(names)
