"""Who may ask the broker: bearer tokens verified against a JWKS, turned into a Principal.

Tokens are signed with an asymmetric key only: the OpenBao transit issuer key (Ed25519, see
:mod:`mlsec_platform.identities.tokens`) or an external OIDC provider's keys. The verifier
never accepts ``none`` or an HMAC algorithm, binds each key to the algorithms its JWK allows,
and refetches the key set for an unknown ``kid`` at most once per ``min_refetch_seconds``.
Every refusal is an :class:`InvalidToken` whose message is safe to show the client.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import httpx
import hvac
import jwt

from broker_api.principal import REQUIRED_CLAIMS, Principal
from mlsec_platform.catalog.governance import Purpose, Sensitivity
from mlsec_platform.identities.tokens import (
    ISSUER,
    ISSUER_KEY,
    MAX_LIFETIME_SECONDS,
    InvalidToken,
    bound_thumbprint,
    decode_claims,
    issue_token,
)

__all__ = [
    "BROKER_AUDIENCE",
    "BROKER_ISSUER",
    "InvalidToken",
    "JwksVerifier",
    "http_jwks",
    "issue_broker_token",
    "transit_jwks",
]

log = logging.getLogger(__name__)

BROKER_AUDIENCE = "mlsec-broker"
BROKER_ISSUER = ISSUER

#: Asymmetric algorithms a verifier may accept, and the JWK key type (and curves) each needs.
ASYMMETRIC_ALGORITHMS: Mapping[str, tuple[str, frozenset[str] | None]] = {
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
}
#: Registered claims every token must carry, besides the broker's own REQUIRED_CLAIMS.
REGISTERED_CLAIMS = ("exp", "nbf", "iat", "iss", "aud")
#: Longer bearer strings (characters) are refused before any parsing.
MAX_TOKEN_LENGTH = 16 * 1024
#: Verified tokens remembered (by their exact text) for this long, and at most this many.
VERIFIED_TTL_SECONDS = 30.0
VERIFIED_CACHE_SIZE = 10_000

_CLEARANCES = {s.label: s for s in Sensitivity}
_PURPOSES = {p.value: p for p in Purpose}

#: kid -> token algorithm -> key bound to that algorithm.
_KeySet = Mapping[str, Mapping[str, jwt.PyJWK]]


def _parse_jwks(
    document: Mapping[str, Any], allowed: frozenset[str]
) -> dict[str, dict[str, jwt.PyJWK]]:
    """kid -> alg -> PyJWK for every signing key usable with one of the allowed algorithms."""
    entries = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise ValueError("JWKS document has no 'keys' list")
    keys: dict[str, dict[str, jwt.PyJWK]] = {}
    ambiguous: set[str] = set()
    for jwk in entries:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
            continue
        if jwk.get("use", "sig") != "sig":
            continue  # an encryption key never verifies a signature
        bound: dict[str, jwt.PyJWK] = {}
        for alg in [jwk["alg"]] if "alg" in jwk else sorted(allowed):
            if not isinstance(alg, str) or alg not in allowed:
                continue
            kty, curves = ASYMMETRIC_ALGORITHMS[alg]
            if jwk.get("kty") != kty:
                continue
            if curves is not None and jwk.get("crv") not in curves:
                continue
            try:
                bound[alg] = jwt.PyJWK(jwk, algorithm=alg)
            except jwt.PyJWTError as exc:
                log.warning("JWKS key %r skipped: %s", jwk["kid"], type(exc).__name__)
        if bound and jwk["kid"] in keys:
            ambiguous.add(jwk["kid"])
        elif bound:
            keys[jwk["kid"]] = bound
    for kid in ambiguous:  # two signing keys under one kid: which one signed is unknowable
        log.warning("JWKS key %r skipped: the kid is not unique", kid)
        del keys[kid]
    return keys


def _strings(value: Any) -> tuple[str, ...] | None:
    """The list's items when it is a list of non-empty strings, else None."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        return None
    return tuple(value)


def _principal(claims: dict[str, Any]) -> Principal:
    """The Principal a verified token's claims describe; InvalidToken when a claim is off."""
    subject, project = claims["sub"], claims["project"]  # sub: checked by check_claims
    groups = _strings(claims["groups"])
    if groups is None:
        raise InvalidToken("claim 'groups' must be a list of non-empty strings")
    if not isinstance(project, str) or not project:
        raise InvalidToken("claim 'project' must be a non-empty string")
    purpose = _PURPOSES.get(claims["purpose"]) if isinstance(claims["purpose"], str) else None
    if purpose is None:
        raise InvalidToken(f"claim 'purpose' must be one of {', '.join(_PURPOSES)}")
    label = claims["data_clearance"]
    clearance = _CLEARANCES.get(label) if isinstance(label, str) else None
    if clearance is None:
        raise InvalidToken(f"claim 'data_clearance' must be one of {', '.join(_CLEARANCES)}")
    entitlements = _strings(claims.get("entitlements", []))
    if entitlements is None:
        raise InvalidToken("claim 'entitlements' must be a list of non-empty strings")
    certificate = bound_thumbprint(claims)  # every broker token is bound to a certificate
    return Principal(
        subject=subject,
        groups=groups,
        project=project,
        purpose=purpose,
        clearance=clearance,
        entitlements=frozenset(entitlements),
        token_id=claims.get("jti"),
        certificate=certificate,
        claims=MappingProxyType(claims),
    )


class JwksVerifier:
    """Verifies broker bearer tokens against a JWKS and returns who is asking.

    ``fetch_jwks`` returns a JWKS document (``{"keys": [...]}``). Parsed keys are cached for
    ``refresh_seconds``; a token with an unknown ``kid`` triggers a refetch, but fetches happen
    at most once per ``min_refetch_seconds`` so bogus kids cannot hammer the key source. When
    the keys cannot be fetched and the cache is stale, every token is refused (fail closed).
    """

    def __init__(
        self,
        fetch_jwks: Callable[[], Mapping[str, Any]],
        *,
        issuer: str,
        audience: str,
        algorithms: Sequence[str] = ("EdDSA",),
        leeway_seconds: int = 5,
        refresh_seconds: float = 300.0,
        min_refetch_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        max_lifetime_seconds: int = MAX_LIFETIME_SECONDS,
    ) -> None:
        refused = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if refused or not algorithms:
            raise ValueError(
                f"only asymmetric algorithms ({', '.join(ASYMMETRIC_ALGORITHMS)}) may verify "
                f"tokens; refused: {', '.join(map(repr, refused)) or 'an empty list'}"
            )
        if leeway_seconds < 0 or refresh_seconds <= 0 or min_refetch_seconds < 0:
            raise ValueError("leeway and refetch intervals must be >= 0, refresh_seconds > 0")
        self._fetch_jwks = fetch_jwks
        self._issuer = issuer
        self._audience = audience
        self._algorithms = frozenset(algorithms)
        self._leeway = leeway_seconds
        self._max_lifetime = max_lifetime_seconds
        self._refresh = refresh_seconds
        self._min_refetch = min_refetch_seconds
        self._clock = clock
        self._require = [*REGISTERED_CLAIMS, *REQUIRED_CLAIMS]
        self._verified: dict[str, tuple[Principal, float, float]] = {}
        self._verified_lock = threading.Lock()
        # (keys, fetched_at) swapped as one tuple, so the lock-free read path sees a pair.
        self._cache: tuple[_KeySet, float] = ({}, float("-inf"))
        self._attempted_at = float("-inf")
        self._lock = threading.Lock()

    def _refetch(self, now: float) -> None:
        """Replace the cached keys from the source (caller holds the lock); never raises."""
        self._attempted_at = now
        try:
            keys = _parse_jwks(self._fetch_jwks(), self._algorithms)
        except Exception as exc:  # any failure of the key source: keep what we have, fail closed
            log.warning("JWKS fetch failed: %s: %s", type(exc).__name__, exc)
            return
        if not keys:
            log.warning("JWKS holds no key usable with %s", ", ".join(sorted(self._algorithms)))
        self._cache = (keys, now)

    def _key(self, kid: str, alg: str) -> jwt.PyJWK:
        """The cached key for kid bound to alg, refetching the key set when due and allowed."""
        keys, fetched_at = self._cache
        now = self._clock()
        if kid not in keys or now - fetched_at > self._refresh:
            with self._lock:
                keys, fetched_at = self._cache
                now = self._clock()
                if (kid not in keys or now - fetched_at > self._refresh) and (
                    now - self._attempted_at >= self._min_refetch
                ):
                    self._refetch(now)
                    keys, fetched_at = self._cache
            if now - fetched_at > self._refresh:
                raise InvalidToken("signing keys unavailable")
        bound = keys.get(kid)
        if bound is None:
            raise InvalidToken("token signed with an unknown key")
        key = bound.get(alg)
        if key is None:
            raise InvalidToken("token algorithm does not match its key")
        return key

    def verify(self, token: str | None) -> Principal:
        """The Principal of a valid token; InvalidToken (client-safe reason) for anything else."""
        if not token:
            raise InvalidToken("missing bearer token")
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("token too large")
        cached = self._recently_verified(token)
        if cached is not None:
            return cached
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise InvalidToken("unsigned tokens are not accepted")
        if alg.upper().startswith("HS"):
            raise InvalidToken("symmetric algorithms are not accepted")
        if alg not in self._algorithms:
            raise InvalidToken(f"algorithm {alg[:16]!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("token has no key id")
        key = self._key(kid, alg)
        claims = decode_claims(
            token,
            key,
            algorithm=alg,
            audience=self._audience,
            issuer=self._issuer,
            leeway=self._leeway,
            require=self._require,
            max_lifetime=self._max_lifetime,
        )
        principal = _principal(claims)
        with self._verified_lock:
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = (principal, float(claims["exp"]), self._clock())
        return principal

    def cached(self, token: str | None) -> Principal | None:
        """The Principal of a token :meth:`verify` accepted lately and that is still valid, or
        None (then :meth:`verify` decides). Never blocks: no signature check, no key fetch."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        return self._recently_verified(token)

    def _recently_verified(self, token: str) -> Principal | None:
        """A token whose signature and claims verified within ``VERIFIED_TTL_SECONDS`` and
        that has not expired since: the hot path skips the signature check (about 0.2 ms).
        A key removed from the JWKS stops its tokens within that TTL."""
        with self._verified_lock:
            entry = self._verified.get(token)
        if entry is None:
            return None
        principal, expires, verified_at = entry
        if self._clock() - verified_at > VERIFIED_TTL_SECONDS or time.time() >= expires:
            with self._verified_lock:
                self._verified.pop(token, None)
            return None
        return principal


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def transit_jwks(client: hvac.Client, key: str = ISSUER_KEY) -> dict[str, Any]:
    """The JWKS of an OpenBao transit key (the issuer's): one Ed25519 JWK per published version.

    Versions below the key's ``min_decryption_version`` are retired (transit would no longer
    verify them either) and are left out.
    """
    data = client.secrets.transit.read_key(key)["data"]
    if data.get("type") != "ed25519":
        raise ValueError(f"transit key {key} is {data.get('type')!r}, not ed25519")
    oldest = int(data.get("min_decryption_version") or 1)
    versions = sorted((int(v), entry) for v, entry in data["keys"].items() if int(v) >= oldest)
    return {
        "keys": [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": _b64url(base64.b64decode(entry["public_key"])),
                "kid": f"{key}:v{version}",
                "alg": "EdDSA",
                "use": "sig",
            }
            for version, entry in versions
        ]
    }


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def http_jwks(url: str, timeout: float = 5.0) -> Callable[[], dict[str, Any]]:
    """A fetcher for an external provider's ``jwks_uri`` (HTTPS; plain HTTP on loopback only)."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and _loopback(parts.hostname)):
        raise ValueError("a JWKS must be fetched over https (plain http on loopback only)")

    def fetch() -> dict[str, Any]:
        response = httpx.get(url, timeout=timeout, follow_redirects=False)
        if response.status_code != 200:
            raise httpx.HTTPStatusError(
                f"JWKS endpoint answered {response.status_code}",
                request=response.request,
                response=response,
            )
        document = response.json()
        if not isinstance(document, dict):
            raise ValueError("JWKS endpoint did not answer a JSON object")
        return document

    return fetch


def issue_broker_token(
    vault: hvac.Client,
    *,
    subject: str,
    groups: Iterable[str],
    project: str,
    purpose: Purpose | str,
    clearance: Sensitivity | str,
    entitlements: Iterable[str] = (),
    ttl_seconds: int,
    certificate: bytes | str,
    audience: str = BROKER_AUDIENCE,
    not_before: int | None = None,
) -> str:
    """A broker token signed by the issuer key, bound to the client ``certificate`` (PEM)."""
    groups, entitlements = list(groups), sorted(set(entitlements))
    if not subject or not project:
        raise ValueError("a broker token needs a subject and a project")
    if not all(isinstance(g, str) and g for g in [*groups, *entitlements]):
        raise ValueError("groups and entitlements must be non-empty strings")
    level = clearance if isinstance(clearance, Sensitivity) else _CLEARANCES.get(clearance)
    if level is None:
        raise ValueError(f"clearance must be one of {', '.join(_CLEARANCES)}")
    return issue_token(
        vault,
        subject=subject,
        audience=audience,
        ttl_seconds=ttl_seconds,
        certificate=certificate,
        not_before=not_before,
        claims={
            "groups": groups,
            "project": project,
            "purpose": Purpose(purpose).value,
            "data_clearance": level.label,
            "entitlements": entitlements,
        },
    )
