"""Signed lineage receipts: evidence, verifiable offline, of what one broker answer was.

A request with the header ``Mlsec-Receipt: on`` gets, beside its answer, the header
``Mlsec-Receipt: <compact JWS>`` over: the request's fingerprint (method, path, SHA-256 of the
canonical query and of the exact body bytes, subject, project, purpose), the decision (its id,
policy version and ids, columns, masks, row filter, revealed columns), the datasets read with
their Delta versions, the Dagster runs and code versions that made them and their upstream
versions, and the SHA-256 of the exact response body bytes. Its id (``jti``) is recorded in the
request's audit event. ``off`` or no header: no receipt; any other value is refused (400).
On request rather than on by default per policy: the audit event already records every answer
for the platform, a receipt is evidence the caller keeps, and the policy files stay rules of
access only (a receipt changes no access).
Answers of the data and catalog routes carry receipts; refusals carry none (they disclose no
data) and neither do ``/health`` and ``/metrics``. Every answer is a finished body today (no
streamed or Arrow response): a streamed one would need the receipt in a trailer.

Why the broker signs with a key of its own, certified by OpenBao. A transit signature per
response costs a round trip to OpenBao (milliseconds), over the 0.5 ms a receipt may add. So
at start, and again before the certificate ends, each broker process makes an in-memory
Ed25519 key pair and has the transit key ``broker-receipts`` sign a short-lived certificate
for its public key (its kid, the broker instance, ``nbf``/``exp``); receipts are signed in
process and carry the certificate. Per 20 kB page, in thread CPU time: the request's
fingerprint 11 us (on the event loop), the claims and the body's SHA-256 28 us, the signature
44 us; the signature is made while the answer's audit event commits (the answer waits for that
anyway), so only the first two are on its path. The trust stays rooted in OpenBao: a
verifier checks the certificate with the receipt JWKS (the transit key's public versions,
``GET /receipts/jwks``), then the receipt with the certified key. The private half never
leaves the process and lives one certificate lifetime; a stolen one signs nothing after its
``exp``. The broker's OpenBao policy may sign with ``broker-receipts`` only: never with the
token issuer key (that would let it mint identities), and the certificate's JWS ``typ``
keeps it from passing for anything else. No state is shared between broker processes: each
certifies its own key, and all verify against the same JWKS.

Fail closed: a request asking for a receipt when no valid certificate is held is refused 503
before any data is read.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import hvac
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import Request
from fastapi.responses import Response

from broker_api.client.receipts import (
    CERTIFICATE_TYPE,
    RECEIPT_HEADER,
    RECEIPT_TYPE,
    b64url,
    request_fingerprint,
)
from broker_api.errors import RequestRefused
from broker_api.identity import transit_jwks
from broker_api.lineage import AssetLineage
from broker_api.responses import lineage_out
from mlsec_platform.identities.catalog import BROKER_RECEIPT_KEY as RECEIPT_KEY

log = logging.getLogger(__name__)

#: Seconds a broker key certificate is valid; it is renewed once a third of it is left.
CERTIFICATE_SECONDS = 3600
#: Audit fields of the caller, and of the decision, that a receipt restates.
CALLER_FIELDS = ("subject", "project", "purpose", "clearance")
DECISION_FIELDS = (
    "decision_id", "policy_version", "policy_ids", "columns", "masks", "row_filter", "revealed",
)  # fmt: skip


class ReceiptsUnavailable(RequestRefused):
    """A receipt was asked for and the broker holds no valid signing certificate (OpenBao
    did not certify its key): nothing is served without one."""

    http_status = 503
    headers = MappingProxyType({"Retry-After": "5"})


@dataclass(frozen=True, slots=True)
class _Certified:
    """An in-memory signing key and the certificate OpenBao signed for its public half."""

    key: Ed25519PrivateKey
    header: bytes  # the receipt JWS header, base64url, certificate included
    not_after: int


@dataclass(frozen=True, slots=True)
class Prepared:
    """A receipt whose claims are final and whose key is held: signing it cannot fail, so it
    can be signed after its answer is sealed."""

    key: Ed25519PrivateKey
    signing_input: bytes  # base64url header "." base64url claims

    def sign(self) -> str:
        """The compact JWS."""
        signature = base64.urlsafe_b64encode(self.key.sign(self.signing_input)).rstrip(b"=")
        return (self.signing_input + b"." + signature).decode()


@dataclass(frozen=True, slots=True)
class Asked:
    """A request that asked for a receipt: its fingerprint, taken before it was answered."""

    fingerprint: dict[str, Any]


class ReceiptSigner:
    """Signs receipts with a broker key certified by the transit key :data:`RECEIPT_KEY`.

    ``vault`` returns an OpenBao client of the broker identity. The certificate is made at
    start (a failure is logged: receipts are then refused 503 until one is made) and renewed
    on a thread of its own once a third of its lifetime is left.
    """

    def __init__(
        self,
        vault: Callable[[], hvac.Client],
        *,
        lifetime: int = CERTIFICATE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._vault = vault
        self._lifetime = lifetime
        self.clock = clock
        self.instance = f"broker-{uuid.uuid4().hex[:12]}"
        self._current: _Certified | None = None
        self._renewing = threading.Lock()
        self._jwks: tuple[float, dict[str, Any]] | None = None
        try:
            self._renew()
        except Exception as exc:  # noqa: BLE001 - OpenBao down or no key yet: refuse receipts
            log.warning("receipts: broker key not certified: %s", type(exc).__name__)

    def _renew(self) -> None:
        key = Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        kid = b64url(hashlib.sha256(public).digest()[:16])
        now = int(self.clock())
        claims = {
            "iss": "mlsec-broker",
            "sub": self.instance,
            "kid": kid,
            "x": b64url(public),
            "iat": now,
            "nbf": now - 5,
            "exp": now + self._lifetime,
        }
        client = self._vault()
        version = int(client.secrets.transit.read_key(RECEIPT_KEY)["data"]["latest_version"])
        header = {"alg": "EdDSA", "typ": CERTIFICATE_TYPE, "kid": f"{RECEIPT_KEY}:v{version}"}
        signing_input = (_segment(header) + b"." + _segment(claims)).decode()
        signed = client.secrets.transit.sign_data(
            RECEIPT_KEY, base64.b64encode(signing_input.encode()).decode(), key_version=version
        )["data"]["signature"]
        raw = base64.b64decode(signed.rsplit(":", 1)[1])
        certificate = f"{signing_input}.{b64url(raw)}"
        receipt_header = {"alg": "EdDSA", "typ": RECEIPT_TYPE, "kid": kid, "crt": certificate}
        self._current = _Certified(key, _segment(receipt_header), claims["exp"])

    def _renew_quietly(self) -> None:
        try:
            self._renew()
        except Exception as exc:  # noqa: BLE001 - retried on the next receipt
            log.warning("receipts: renewing the broker key failed: %s", type(exc).__name__)
        finally:
            self._renewing.release()

    def current(self) -> _Certified:
        """The certified key, if still valid (a renewal starts when it nears its end);
        ReceiptsUnavailable if there is none. Never blocks."""
        held, now = self._current, self.clock()
        due = held is None or held.not_after - now < self._lifetime / 3
        if due and self._renewing.acquire(blocking=False):
            threading.Thread(target=self._renew_quietly, daemon=True).start()
        if held is None or now >= held.not_after:
            raise ReceiptsUnavailable("receipts are unavailable: the broker key is not certified")
        return held

    def prepare(self, claims: dict[str, Any]) -> Prepared:
        """The signing input of ``claims`` (which must hold ``iat``) under the certified key
        (ReceiptsUnavailable if none is held): everything of a receipt that can fail."""
        held = self.current()
        return Prepared(held.key, held.header + b"." + _segment(claims))

    def jwks(self) -> dict[str, Any]:
        """The receipt key's public versions (what verifies certificates), cached 60 s."""
        cached = self._jwks
        if cached is None or time.monotonic() - cached[0] > 60:
            cached = self._jwks = (time.monotonic(), transit_jwks(self._vault(), RECEIPT_KEY))
        return cached[1]


def _segment(value: dict[str, Any]) -> bytes:
    return base64.urlsafe_b64encode(orjson.dumps(value)).rstrip(b"=")


async def asked(request: Request, signer: ReceiptSigner) -> Asked | None:
    """The request's fingerprint if it asks for a receipt (None if not); 400 for a header
    value other than ``on``/``off``, 503 when no receipt could be signed (before any work)."""
    wanted = request.headers.get(RECEIPT_HEADER)
    if wanted is None or wanted.strip().lower() == "off":
        return None
    if wanted.strip().lower() != "on":
        raise RequestRefused(f"header {RECEIPT_HEADER} must be 'on' or 'off'")
    signer.current()
    body = await request.body()  # the bytes FastAPI already read (cached), or none
    return Asked(request_fingerprint(request.method, request.url.path, request.url.query, body))


def read(request: Request, lineage: AssetLineage) -> None:
    """Note that the answer to ``request`` reads ``lineage`` (its receipt names it)."""
    reads = getattr(request.state, "reads", None)
    if reads is None:
        request.state.reads = reads = []
    reads.append(lineage)


def prepare(request: Request, response: Response, ask: Asked, signer: ReceiptSigner) -> Prepared:
    """The receipt of the finished ``response``, ready to sign, its id recorded in the
    request's audit event (not yet sealed). Whatever can fail happens here (ReceiptsUnavailable
    if the key expired meanwhile): the caller seals the answer, then signs the receipt into it
    with :func:`sign_into` while the audit event commits."""
    audit = request.state.audit
    receipt_id = uuid.uuid4().hex
    dataset = audit.get("dataset")
    claims = {
        "jti": receipt_id,
        "iat": int(signer.clock()),
        "iss": signer.instance,
        "request_id": request.state.request_id,
        "request": {**ask.fingerprint, **{k: audit.get(k) for k in CALLER_FIELDS}},
        "decision": {k: audit.get(k) for k in DECISION_FIELDS},
        "datasets": [
            {"dataset": dataset, **lineage_out(lin)} for lin in getattr(request.state, "reads", ())
        ],
        "response": {
            "status": response.status_code,
            "body_sha256": hashlib.sha256(response.body).hexdigest(),
        },
    }
    prepared = signer.prepare(claims)
    audit["receipt_id"] = receipt_id
    return prepared


def sign_into(response: Response, prepared: Prepared) -> None:
    """Sign ``prepared`` into the receipt header of ``response`` (cannot fail)."""
    response.headers[RECEIPT_HEADER] = prepared.sign()
