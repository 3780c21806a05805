"""The real broker over HTTPS (mTLS: the session's client certificate), on the session's stack
and its curated 100k-order data."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from broker_api.identity import issue_broker_token
from broker_api.server import BackgroundBroker
from mlsec_platform.stack.ports import PortAllocator
from mlsec_platform_tests.helpers import https_client, operator_vault, session_client

#: Who the tests are; each test gets its own subject so rate limits never leak between tests.
PEOPLE = {
    "analyst": dict(
        groups=["analysts"], project="olist-br", purpose="analytics", clearance="internal"
    ),
    "analyst_conf": dict(
        groups=["analysts"], project="olist-br", purpose="analytics", clearance="confidential"
    ),
    "analyst_sp": dict(
        groups=["analysts"], project="olist-sp", purpose="analytics", clearance="confidential"
    ),
    "support": dict(
        groups=["support"], project="olist-br", purpose="customer_support", clearance="confidential"
    ),
    "fraud": dict(
        groups=["fraud"], project="olist-br", purpose="fraud_prevention", clearance="restricted"
    ),
    "officer": dict(
        groups=["privacy-office"],
        project="olist-br",
        purpose="customer_support",
        clearance="restricted",
        entitlements=["reveal"],
    ),
    "stranger": dict(
        groups=["visitors"], project="olist-br", purpose="analytics", clearance="restricted"
    ),
    "probe": dict(groups=["probes"], purpose="analytics", clearance="confidential"),
    "probe_rate": dict(groups=["rate-probes"], purpose="analytics", clearance="internal"),
}
_subjects = itertools.count()


@pytest.fixture(scope="session")
def broker(settings, endpoints, curated) -> Iterator[BackgroundBroker]:
    with BackgroundBroker(settings, PortAllocator().take()) as running:
        yield running


@pytest.fixture(scope="session")
def mint(settings, endpoints) -> Callable[..., str]:
    """``mint("analyst", purpose=...)``: a token for a fresh subject of that kind, bound to the
    session's client certificate (``certificate=``: to another one)."""
    vault = operator_vault(settings, endpoints)
    default = session_client(settings).pem

    def _mint(kind: str, **overrides) -> str:
        claims = {"certificate": default, **PEOPLE[kind], **overrides}
        subject = claims.pop("subject", f"{kind}-{next(_subjects)}")
        return issue_broker_token(vault, subject=subject, ttl_seconds=600, **claims)

    return _mint


@pytest.fixture
def http(broker, client_tls) -> Iterator[httpx.Client]:
    with https_client(broker.url, client_tls) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


FACT = "gold/fact_order_item"
DIM = "gold/dim_customer"


def post_query(http, token, **body):
    body.setdefault("dataset", FACT)
    body.setdefault("columns", ["order_id", "order_item_id", "price"])
    return http.post("/query", json=body, headers=bearer(token))


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


#: A policy with tight caps, for tests of the limits: the packaged policy plus a role per kind
#: of limit under test and projects of their own (each test its own, so quotas, which the
#: brokers of the session share, never leak between tests).
TIGHT_ROLES = {
    # Caps on what one answer returns, and a small daily quota.
    "probe": {
        "groups": ["probes"],
        "datasets": ["gold/*", "features/*"],
        "purposes": ["analytics"],
        "clearance_cap": "confidential",
        "limits": {
            "max_rows_per_page": 5,
            "max_bytes": 1000,
            "rows_per_day": 12,
            "concurrency": 1,
            "requests_per_minute": 60_000,
            "burst": 1_000,
            "project_requests_per_minute": 60_000,
        },
    },
    # Four requests, then (almost) nothing: per subject and per project.
    "probe_rate": {
        "groups": ["rate-probes"],
        "datasets": ["gold/*"],
        "purposes": ["analytics"],
        "limits": {"requests_per_minute": 1, "burst": 4, "project_requests_per_minute": 1},
    },
}
PROBE_PROJECTS = [f"probe-{i}" for i in range(12)]


def tight_policy(folder: Path) -> Path:
    """The packaged policy file with :data:`TIGHT_ROLES` and :data:`PROBE_PROJECTS` added."""
    from broker_api.policy.files import POLICY_DIR

    source = max(POLICY_DIR.glob("*.yaml"))
    policy = yaml.safe_load(source.read_text())
    policy["roles"].update(TIGHT_ROLES)
    for project in PROBE_PROJECTS:
        policy["projects"][project] = {"description": "limits under test", "scope": "*"}
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # as an operator keeps it: the broker's OS user reads it
    (folder / source.name).write_text(yaml.safe_dump(policy, sort_keys=False))
    return folder


@pytest.fixture(scope="session")
def tight_policy_dir(tmp_path_factory) -> Path:
    return tight_policy(tmp_path_factory.mktemp("tight-policy"))


@pytest.fixture(scope="session")
def tight_broker(settings, endpoints, curated, tight_policy_dir) -> Iterator[BackgroundBroker]:
    """A second broker, in this process, under the tight policy."""
    with broker_under(settings, tight_policy_dir) as running:
        yield running


def broker_under(settings, policy_dir: Path) -> BackgroundBroker:
    """A broker in this process under the policy files of ``policy_dir`` (to enter)."""
    policy = settings.model_copy(update={"broker_policy_dir": policy_dir})
    return BackgroundBroker(policy, PortAllocator().take())


class BrokerProcess:
    """`mlsec broker` in a process of its own (as deployed), under the tight policy; it can be
    restarted."""

    def __init__(self, policy_dir: Path, log: Path, tls) -> None:
        self.port = PortAllocator().take()
        self.url = f"https://127.0.0.1:{self.port}"
        self.tls = tls
        self._env = {**os.environ, "MLSEC_BROKER_POLICY_DIR": str(policy_dir)}
        self._log = log
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        mlsec = Path(sys.executable).parent / "mlsec"
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [str(mlsec), "broker", "--port", str(self.port)],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        while True:
            try:
                with https_client(self.url, self.tls, timeout=1) as client:
                    if client.get("/health").status_code == 200:
                        return
            except httpx.TransportError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the broker did not start: {self._log.read_text()[-2000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(30)
        self._process = None


@pytest.fixture(scope="session")
def broker_process(
    tight_broker, tight_policy_dir, tmp_path_factory, client_tls
) -> Iterator[BrokerProcess]:
    """A replica of ``tight_broker`` in another process, over the same stack."""
    log = tmp_path_factory.mktemp("replica") / "broker.log"
    process = BrokerProcess(tight_policy_dir, log, client_tls)
    process.start()
    try:
        yield process
    finally:
        process.stop()


# Budgets and exfiltration detection: two replicas under a policy with small disclosure budgets
# and low detection thresholds; each test uses projects and subjects of its own.

#: Budgeted projects (analytics): 6 distinct customers and 40 rows an hour, each its own count.
BUDGETED = [f"budget-{i}" for i in range(6)]
SUBJECTS_CAP, ROWS_CAP = 6, 40
#: Projects under detection only.
WATCHED = [f"watch-{i}" for i in range(8)]
THRESHOLDS = {"entity_enumeration": 30, "pagination_sweep": 6, "filter_probing": 8}
#: Who reads under this policy: the role's cap is restricted, so the token's clearance decides
#: whether customer tokens come back clear (restricted) or masked (below).
GUARDED = dict(groups=["guarded"], purpose="analytics", clearance="internal")


def guarded_policy(folder: Path) -> Path:
    """The tight test policy, plus a role, budgets and detection of its own."""
    tight_policy(folder)
    file = max(folder.glob("*.yaml"))
    policy = yaml.safe_load(file.read_text())
    policy["roles"]["guarded"] = {
        "groups": ["guarded"],
        "datasets": ["gold/*", "features/*"],
        "purposes": ["analytics"],
        "limits": {"requests_per_minute": 60_000, "burst": 1_000, "concurrency": 8},
    }
    for project in [*BUDGETED, *WATCHED]:
        policy["projects"][project] = {"description": "guards under test", "scope": "*"}
    policy["budgets"] = {
        "probe-customers": {
            "purpose": "analytics",
            "projects": BUDGETED,
            "window_seconds": 3600,
            "subjects": SUBJECTS_CAP,
            "rows": ROWS_CAP,
        }
    }
    policy["detection"] = {
        "entity_enumeration": {"window_seconds": 600, "action": "suspend"},
        "pagination_sweep": {"window_seconds": 600, "action": "throttle", "throttle_seconds": 60},
        "filter_probing": {"window_seconds": 600, "action": "reauthenticate"},
    }
    for name, threshold in THRESHOLDS.items():
        policy["detection"][name]["threshold"] = threshold
    file.write_text(yaml.safe_dump(policy, sort_keys=False))
    return folder


@pytest.fixture(scope="session")
def guarded_policy_dir(tmp_path_factory) -> Path:
    return guarded_policy(tmp_path_factory.mktemp("guarded-policy"))


@pytest.fixture(scope="session")
def guarded(settings, endpoints, curated, guarded_policy_dir) -> Iterator[BackgroundBroker]:
    """A broker in this process under the guarded policy."""
    with broker_under(settings, guarded_policy_dir) as running:
        yield running


@pytest.fixture(scope="session")
def guarded_replica(
    guarded, guarded_policy_dir, tmp_path_factory, client_tls
) -> Iterator[BrokerProcess]:
    """A replica of ``guarded`` in a process of its own, over the same stack."""
    process = BrokerProcess(
        guarded_policy_dir, tmp_path_factory.mktemp("guarded") / "broker.log", client_tls
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def replicas(guarded, guarded_replica, client_tls) -> Iterator[list[httpx.Client]]:
    """Clients of both replicas: this process's first."""
    with (
        https_client(guarded.url, client_tls) as here,
        https_client(guarded_replica.url, client_tls) as there,
    ):
        yield [here, there]


def query(client: httpx.Client, token: str, **body) -> httpx.Response:
    body.setdefault("dataset", "gold/dim_customer")
    body.setdefault("columns", ["customer_token", "orders"])
    return client.post("/query", json=body, headers=bearer(token))
