"""`mlsec dashboard`: the BI dashboard over Gold for one viewer, served by Streamlit.

The viewer is either one of :data:`VIEWERS` (``--viewer``: the command issues a client
certificate and a token bound to it, both short-lived and audited, as the demo does for its
readers) or brings their own (``MLSEC_DASHBOARD_TOKEN`` and the ``MLSEC_CA_BUNDLE``,
``MLSEC_CLIENT_CERT``, ``MLSEC_CLIENT_KEY`` of `mlsec cert issue --shell`). The token reaches
the Streamlit process through its environment only: it is never printed or written.

Streamlit runs as this process's child; this process holds the `dashboard` record of `mlsec
status` and, on SIGTERM or Ctrl-C, stops the child before it ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlsec_platform.dashboard import data
from mlsec_platform.dashboard.data import BROKER_URL_ENV, TOKEN_ENV, VIEWER_ENV
from mlsec_platform.ops.certs import ephemeral_client
from mlsec_platform.ops.refusals import NotApplicable, UnknownName
from mlsec_platform.ops.services import service_states, serving
from mlsec_platform.ops.tokens import BROKER_AUDIENCE, TokenRequest, issue_operator_token
from mlsec_platform.serving.client import CA_BUNDLE_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV
from mlsec_platform.settings import PlatformSettings

Echo = Callable[[str], None]

#: The Streamlit script (by path: importing it would import Streamlit here for nothing).
APP = Path(data.__file__).with_name("app.py")
#: Seconds Streamlit gets to stop on SIGTERM before it is killed.
STOP_GRACE = 10.0


class NoViewer(NotApplicable):
    """Neither a subject to issue a token for nor a token of the viewer's own."""


@dataclass(frozen=True)
class Viewer:
    """A named viewer's broker claims (`mlsec token issue`'s vocabulary)."""

    subject: str
    groups: tuple[str, ...]
    project: str
    purpose: str
    clearance: str
    ttl: int = 3600


#: The viewers `mlsec dashboard --viewer` issues for, to see the policy at work side by side:
#: Brazil-wide, Sao Paulo's team (its rows only), and support (no grant on the KPI tables:
#: every panel shows the refusal). A clearance below `internal` is refused too: the KPIs'
#: amounts are internal and have no mask.
VIEWERS = {
    "analyst": Viewer("dashboard-analyst", ("analysts",), "olist-br", "analytics", "internal"),
    "analyst-sp": Viewer(
        "dashboard-analyst-sp", ("analysts",), "olist-sp", "analytics", "internal"
    ),
    "support": Viewer(
        "dashboard-support", ("support",), "olist-br", "customer_support", "confidential"
    ),
}


def named_viewer(name: str | None) -> Viewer | None:
    """The viewer called ``name`` in :data:`VIEWERS` (None: the caller brings a token)."""
    if name is None:
        return None
    if name not in VIEWERS:
        raise UnknownName(f"--viewer {name!r}: one of {', '.join(VIEWERS)}")
    return VIEWERS[name]


def broker_url(settings: PlatformSettings) -> str:
    """The running `mlsec broker`'s address if `mlsec status` knows one, else the default."""
    for service in service_states(settings):
        if service.name == "broker" and service.up and service.url:
            return service.url
    return f"https://127.0.0.1:{settings.broker_port}"


@contextmanager
def viewer_environment(
    settings: PlatformSettings, viewer: Viewer | None, environ: Mapping[str, str]
) -> Iterator[dict[str, str]]:
    """The Streamlit process's credentials: issued for ``viewer`` (files kept for the block),
    or the caller's own from ``environ``."""
    if viewer is None:
        if not environ.get(TOKEN_ENV) or not environ.get(CLIENT_CERT_ENV):
            raise NoViewer(
                f"give --viewer ({', '.join(VIEWERS)}), or set {TOKEN_ENV} and the client "
                "certificate's variables (`mlsec cert issue --shell`)"
            )
        yield {VIEWER_ENV: "the token's subject"}
        return
    with ephemeral_client(settings, viewer.subject, ttl_seconds=viewer.ttl) as (tls, _):
        request = TokenRequest(
            subject=viewer.subject,
            certificate=tls.certificate,
            audience=BROKER_AUDIENCE,
            groups=viewer.groups,
            project=viewer.project,
            purpose=viewer.purpose,
            clearance=viewer.clearance,
            ttl=viewer.ttl,
        )
        yield {
            TOKEN_ENV: issue_operator_token(settings, request),
            CA_BUNDLE_ENV: str(tls.ca_bundle),
            CLIENT_CERT_ENV: str(tls.certificate),
            CLIENT_KEY_ENV: str(tls.key),
            VIEWER_ENV: f"{viewer.subject} (project {viewer.project}, {viewer.clearance})",
        }


def streamlit_command(host: str, port: int) -> list[str]:
    """Streamlit serving the dashboard's page, headless, without usage statistics."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip


def serve_dashboard(
    settings: PlatformSettings,
    host: str,
    port: int,
    viewer: str | None,
    broker: str | None,
    echo: Echo,
) -> int:
    """Serve the dashboard for ``viewer`` (one of :data:`VIEWERS`; None: the caller's own
    token) until Ctrl-C or SIGTERM (or Streamlit ends); Streamlit's exit status."""
    url = f"http://{host}:{port}"
    with viewer_environment(settings, named_viewer(viewer), os.environ) as credentials:
        env = {**os.environ, **credentials, BROKER_URL_ENV: broker or broker_url(settings)}
        echo(f"Dashboard on {url}, reading {env[BROKER_URL_ENV]} (Ctrl-C to stop)")
        child = subprocess.Popen(streamlit_command(host, port), env=env)  # noqa: S603
        try:
            with serving(settings, "dashboard", url, host, port):
                return child.wait()
        finally:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(STOP_GRACE)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
