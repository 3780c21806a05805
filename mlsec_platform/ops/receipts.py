"""``mlsec receipt verify``: check a broker lineage receipt offline.

The receipt and the exact body it was issued for come as one file (the receipt on its first
line, then the body: ``broker_api.client.receipts.receipt_file``) or as the receipt file and
``--body``. The keys are the receipt JWKS: from a file (``--jwks``: no stack, no login), or
read from the running stack's OpenBao as the operator (audited)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broker_api.client.receipts import ReceiptInvalid, read_receipt_file, verify_receipt
from broker_api.identity import transit_jwks
from mlsec_platform.identities.catalog import BROKER_RECEIPT_KEY
from mlsec_platform.ops.operator import operator_command
from mlsec_platform.ops.refusals import ActionFailed, NotApplicable
from mlsec_platform.settings import PlatformSettings

Echo = Callable[[str], None]


class LineageReceiptNotVerified(ActionFailed):
    """The receipt does not verify for that body: changed, or signed by another key."""


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise NotApplicable(f"cannot read {path}: {exc.strerror}") from None


def _receipt_and_body(path: Path, body: Path | None) -> tuple[str, bytes]:
    data = _read(path)
    if body is None:
        return read_receipt_file(data)
    try:
        return data.decode("ascii").strip(), _read(body)
    except UnicodeDecodeError:
        raise NotApplicable(f"{path} does not hold a receipt") from None


def verify_lineage_receipt(
    settings: PlatformSettings,
    path: Path,
    body: Path | None = None,
    jwks: Path | None = None,
    echo: Echo = print,
) -> dict[str, Any]:
    """The claims of the receipt in ``path`` if it verifies for its body; else
    LineageReceiptNotVerified (exit 1)."""
    try:
        token, content = _receipt_and_body(path, body)
    except ReceiptInvalid as exc:
        raise LineageReceiptNotVerified(f"{path}: {exc}") from None
    if jwks is not None:
        try:
            keys = json.loads(_read(jwks))
        except ValueError:
            raise NotApplicable(f"{jwks} is not a JSON key set") from None
        claims = _verified(path, token, content, keys)
    else:
        with operator_command(settings, "receipt-verify") as session:
            keys = transit_jwks(session.vault, BROKER_RECEIPT_KEY)
            try:
                claims = _verified(path, token, content, keys)
            except LineageReceiptNotVerified as exc:
                session.audit.emit("receipt.rejected", {"file": path.name, "why": str(exc)})
                raise
            session.audit.emit("receipt.verified", {"id": claims.get("jti")})
    datasets = ", ".join(
        f"{d.get('asset_key')}@v{d.get('delta_version')}" for d in claims.get("datasets", [])
    )
    request = claims.get("request", {})
    echo(
        f"Receipt {claims.get('jti')} verified: {request.get('method')} {request.get('path')} "
        f"by {request.get('subject')} ({request.get('purpose')}), "
        f"decision {claims.get('decision', {}).get('decision_id')}, read {datasets or 'no dataset'}"
    )
    return claims


def _verified(path: Path, token: str, content: bytes, keys: Any) -> dict[str, Any]:
    try:
        return verify_receipt(token, content, keys)
    except ReceiptInvalid as exc:
        raise LineageReceiptNotVerified(f"{path}: {exc}") from None
