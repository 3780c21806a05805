"""Who may do what: tokens, certificates, key rotation, reveal, operators, receipts, audit."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlsec_platform.cli.base import (
    _Command,
    _lazy,
    _LazyChoice,
    audit,
    cert,
    echo,
    main,
    operator,
    receipt,
    rotate,
    subject,
    token,
)
from mlsec_platform.settings import get_settings


@rotate.command("s3-keys")
@click.argument("identities", nargs=-1)
def rotate_s3(identities: tuple[str, ...]) -> None:
    """New S3 keys for IDENTITIES (default: all); the old keys stop working at once."""
    _lazy("ops.s3_keys").rotate_identity_keys(get_settings(), identities, echo)


@rotate.command("token-keys")
@click.option("--resume", is_flag=True, help="Finish a rotation whose rewrap failed.")
def rotate_token_keys(resume: bool) -> None:
    """New token vault key versions; rewrap every stored key; retire the old (tokens stay)."""
    _lazy("ops.rotation").rotate_token_keys(get_settings(), echo, resume=resume)


@main.command("reveal")
@click.argument("tokens", nargs=-1, required=True)
@click.option("--domain", default="customers", show_default=True)
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
def reveal_cmd(tokens: tuple[str, ...], domain: str, reason: str) -> None:
    """Turn tokens back into clear values (operator; audited at high severity)."""
    _lazy("ops.reveal").reveal_as_operator(get_settings(), tokens, domain, reason, echo)


class _TokenIssue(_Command):
    """`token issue`, whose help ends with what the current broker policy knows."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Broker tokens"):
            for line in _lazy("ops.tokens").policy_vocabulary(get_settings()):
                formatter.write_text(line)


@token.command("issue", cls=_TokenIssue)
@click.option("--subject", required=True, help="Who the token is for (sub).")
@click.option(
    "--cert",
    "certificate",
    envvar="MLSEC_CLIENT_CERT",
    show_envvar=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The client certificate (PEM) the token is bound to: accepted only with it.",
)
@click.option("--audience", default="mlsec-gateway", show_default=True)
@click.option("--scope", "scopes", multiple=True, help="e.g. upload:olist_orders, publish:*")
@click.option("--group", "groups", multiple=True, help="Broker: a group of the subject.")
@click.option("--project", default=None, help="Broker: the project the subject works for.")
@click.option("--purpose", type=_LazyChoice("Purpose", "value"), default=None, help="Broker: why.")
@click.option(
    "--clearance",
    type=_LazyChoice("Sensitivity", "label"),
    default=None,
    help="Broker: data clearance.",
)
@click.option("--entitlement", "entitlements", multiple=True, help="Broker: e.g. reveal.")
@click.option("--ttl", type=int, default=None, help="Seconds (default MLSEC_UPLOAD_TOKEN_TTL).")
def token_issue(**options) -> None:
    """Print a signed token (operator command: logs in as the operator; audited).

    Gateway tokens carry --scope; broker tokens (--audience mlsec-broker) carry --group,
    --project, --purpose, --clearance and optionally --entitlement. Either is bound to the
    client certificate --cert (`mlsec cert issue`).
    """
    tokens = _lazy("ops.tokens")
    echo(tokens.issue_operator_token(get_settings(), tokens.TokenRequest(**options)))


@cert.command("issue")
@click.option("--subject", required=True, help="Who the certificate is for (its CN).")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for SUBJECT.pem, SUBJECT-key.pem (0600) and ca.pem.",
)
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 3600, 30m, 1h (12h max).")
@click.option("--shell", is_flag=True, help="Print `export MLSEC_...=` lines for the SDK.")
def cert_issue(subject: str, out: Path, ttl: str, shell: bool) -> None:
    """Issue a client certificate for the broker and the gateway (operator command; audited)."""
    _lazy("ops.certs").issue_to_folder(get_settings(), subject, out, ttl, shell, echo)


@audit.command("verify")
@click.option("--no-anchor", is_flag=True, help="Do not move the OpenBao anchor forward.")
def audit_verify(no_anchor: bool) -> None:
    """Recompute every link as the auditor and anchor the head in OpenBao; report the first
    broken link (exit 1)."""
    report = _lazy("ops.audit_verify").report_audit_log(get_settings(), echo, anchor=not no_anchor)
    sys.exit(0 if report.ok else 1)


@audit.command("search")
@click.option("--subject", default=None, help="Who acted (a token's subject).")
@click.option(
    "--dataset", default=None, help="The dataset read or written, e.g. gold/dim_customer."
)
@click.option("--type", "event_type", default=None, help="Event type, e.g. broker.request.")
@click.option("--outcome", type=click.Choice(["allowed", "denied"]), default=None)
@click.option("--since", default=None, help="ISO 8601 time, or an age: 90s, 30m, 12h, 7d.")
@click.option("--until", default=None, help="ISO 8601 time, or an age: 90s, 30m, 12h, 7d.")
@click.option("--limit", default=50, show_default=True, help="Newest events shown at most.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit_search(
    subject: str | None,
    dataset: str | None,
    event_type: str | None,
    outcome: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Find audit events by subject, dataset, type, outcome and time, newest first."""
    search = _lazy("ops.audit_search")
    where = search.AuditFilter(
        subject=subject,
        dataset=dataset,
        event_type=event_type,
        outcome=outcome,
        since=search.parse_time(since),
        until=search.parse_time(until),
        limit=limit,
    )
    search.report_search(get_settings(), where, echo, as_json=as_json)


@operator.command("revoke-root")
def operator_revoke_root() -> None:
    """Revoke OpenBao's root token; operator commands and bootstrap work on without it."""
    _lazy("ops.operator").revoke_root_token(get_settings(), echo)


@subject.command("resume")
@click.argument("name")
@click.option("--reason", required=True, help="Why (recorded in the audit log).")
def subject_resume(name: str, reason: str) -> None:
    """Lift the hold detection put on subject NAME, in every broker replica."""
    _lazy("ops.subjects").resume_subject(get_settings(), name, reason, echo)


@receipt.command("verify")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--body", type=click.Path(dir_okay=False, path_type=Path), help="The body file.")
@click.option("--jwks", type=click.Path(dir_okay=False, path_type=Path), help="A JWKS file.")
def receipt_verify(file: Path, body: Path | None, jwks: Path | None) -> None:
    """Check a broker lineage receipt against its response body; exit 1 if it does not verify.

    FILE: the receipt line, then the body (or the receipt only, with --body); the keys: the
    running stack's receipt JWKS (or --jwks)."""
    _lazy("ops.receipts").verify_lineage_receipt(get_settings(), file, body, jwks, echo)
