"""`mlsec` as a person meets it: refusals read as click's errors, platform errors as one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mlsec_platform.cli import _Command, main
from mlsec_platform.errors import AccessDenied
from mlsec_platform.ops.refusals import ActionFailed, NotApplicable, UnknownName

#: The `stack` profile with no server address: a command that needs one cannot go on.
MISSING = "MLSEC_VAULT_ADDR, MLSEC_S3_ENDPOINT, MLSEC_POSTGRES_HOST, MLSEC_NATS_URL"


def test_a_platform_error_ends_in_one_line_without_a_traceback(tmp_path):
    """The installed entry point: run() prints a ConfigurationError as `error: ...`, exit 2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSEC_")}
    env.update(MLSEC_PROFILE="stack", MLSEC_STATE_DIR=str(tmp_path))
    mlsec = Path(sys.executable).parent / "mlsec"
    result = subprocess.run(
        [str(mlsec), "bootstrap"], env=env, capture_output=True, text=True, timeout=120
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1] == f"error: profile 'stack' needs {MISSING}"
    assert result.stdout == ""


def test_an_action_the_profile_has_not_reads_as_a_usage_error(tmp_path):
    env = {"MLSEC_PROFILE": "stack", "MLSEC_STATE_DIR": str(tmp_path)}
    result = CliRunner(env=env).invoke(main, ["status"])
    assert result.exit_code == 2
    assert "Usage: main status [OPTIONS]" in result.output
    assert (
        "Error: this command manages the embedded servers of the `local` profile" in result.output
    )


def test_an_unknown_name_reads_as_an_invalid_value(tmp_path):
    args = ["quarantine", "exclude", "nosuch", "b1", "--reason", "test"]
    result = CliRunner(env={"MLSEC_STATE_DIR": str(tmp_path)}).invoke(main, args)
    assert result.exit_code == 2
    assert "Usage: main quarantine exclude [OPTIONS] SOURCE BATCH_ID" in result.output
    assert "Error: Invalid value: unknown source nosuch; known: olist_customers" in result.output


@pytest.mark.parametrize(
    "refusal, exit_code, shown",
    [
        (UnknownName("no such thing"), 2, "Error: Invalid value: no such thing"),
        (NotApplicable("not here"), 2, "Error: not here"),
        (ActionFailed("it broke; v1 stays"), 1, "Error: it broke; v1 stays"),
        (AccessDenied("no reveal policy"), 1, "Error: no reveal policy"),
    ],
)
def test_each_refusal_kind_reads_as_clicks_own_error(refusal, exit_code, shown):
    def refuse() -> None:
        raise refusal

    group = click.Group("main", commands=[_Command("act", callback=refuse)])
    result = CliRunner().invoke(group, ["act"])
    assert result.exit_code == exit_code
    assert shown in result.output
    assert ("Usage: main act" in result.output) == (exit_code == 2)


def test_an_operator_command_with_no_stack_says_to_start_one(tmp_path):
    """No stack (no `mlsec up` yet): one line naming the fix, not a traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSEC_")}
    env.update(MLSEC_STATE_DIR=str(tmp_path))
    mlsec = Path(sys.executable).parent / "mlsec"
    result = subprocess.run(
        [str(mlsec), "cert", "issue", "--subject", "me", "--out", str(tmp_path / "certs")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(
        f"error: no running local stack under {tmp_path}"
    )
    assert "`mlsec up`" in result.stderr


def test_token_issue_help_lists_what_the_broker_policy_knows(tmp_path):
    result = CliRunner(env={"MLSEC_STATE_DIR": str(tmp_path)}).invoke(
        main, ["token", "issue", "--help"], terminal_width=400
    )
    assert result.exit_code == 0, result.output
    assert "The broker's policy 2026.12.1 knows:" in result.output
    for known in ("analysts (analyst)", "privacy-office (privacy_officer)", "support (support)"):
        assert known in result.output
    assert "projects: olist-br, olist-south, olist-sp" in result.output
    assert "customer_support" in result.output and "clearances: public, internal" in result.output


def test_token_issue_help_follows_the_policy_folder(tmp_path):
    """A policy of one's own (MLSEC_BROKER_POLICY_DIR): the help shows its groups, not ours."""
    from broker_api.policy.files import POLICY_DIR

    text = (POLICY_DIR / "2026.11.1.yaml").read_text().replace("2026.11.1", "2026.12.9")
    text = text.replace("groups: [analysts]", "groups: [bi-team]")
    (tmp_path / "2026.12.9.yaml").write_text(text)
    env = {"MLSEC_STATE_DIR": str(tmp_path), "MLSEC_BROKER_POLICY_DIR": str(tmp_path)}
    result = CliRunner(env=env).invoke(main, ["token", "issue", "--help"], terminal_width=400)
    assert "The broker's policy 2026.12.9 knows:" in result.output
    assert "bi-team (analyst)" in result.output and "analysts (analyst)" not in result.output


def test_revoking_the_root_token_of_no_stack_says_to_start_one(tmp_path):
    result = CliRunner(env={"MLSEC_STATE_DIR": str(tmp_path)}).invoke(
        main, ["operator", "revoke-root"]
    )
    assert result.exit_code == 2
    assert f"Error: no root token at {tmp_path}/secrets/openbao-bootstrap-token" in result.output
    assert "start the stack with `mlsec up`" in result.output
