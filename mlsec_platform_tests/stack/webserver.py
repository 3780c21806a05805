"""A Dagster webserver started the way a person starts it, and a job run through it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from dagster_graphql import DagsterGraphQLClient

from mlsec_platform.stack.ports import PortAllocator


@contextmanager
def serving(
    command: Callable[[int], list[str]], *, cwd: Path, env: dict[str, str]
) -> Iterator[int]:
    """Run ``command(port)`` (a process tree: webserver, daemon, code server) until the
    webserver answers; yield its port; stop the tree as a group."""
    port = PortAllocator().take()
    proc = subprocess.Popen(
        command(port),
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_until_answering(proc, port)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def wait_until_answering(proc: subprocess.Popen, port: int, timeout: float = 120) -> None:
    """Until the webserver ``proc`` started answers on ``port``; fails if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{proc.args[:2]} exited early"
        try:
            if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(1)
    pytest.fail(f"the Dagster webserver did not answer within {timeout:.0f} s")


def run_to_the_end(
    port: int, job: str, location: str = "curation", timeout: float = 180
) -> tuple[str, str]:
    """Launch ``job`` of code location ``location`` from the webserver; (run id, status)."""
    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution(
        job, repository_location_name=location, repository_name="__repository__"
    )
    deadline = time.monotonic() + timeout
    status = client.get_run_status(run_id)
    while status.value not in ("SUCCESS", "FAILURE", "CANCELED") and time.monotonic() < deadline:
        time.sleep(1)
        status = client.get_run_status(run_id)
    return run_id, status.value


LOCATIONS_QUERY = """{ workspaceOrError { ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def code_locations(port: int) -> dict[str, str]:
    """Each code location the webserver serves -> what it loaded as (``RepositoryLocation``
    when it loaded, ``PythonError`` when it did not)."""
    deadline = time.monotonic() + 120
    while True:
        answer = requests.post(
            f"http://127.0.0.1:{port}/graphql", json={"query": LOCATIONS_QUERY}, timeout=10
        ).json()
        entries = answer["data"]["workspaceOrError"]["locationEntries"]
        if all(e["loadStatus"] == "LOADED" for e in entries) or time.monotonic() > deadline:
            return {e["name"]: (e["locationOrLoadError"] or {}).get("__typename") for e in entries}
        time.sleep(1)
