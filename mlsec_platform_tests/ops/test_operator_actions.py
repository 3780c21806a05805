"""Operator actions refuse before they touch a server, with typed errors: no click involved."""

from __future__ import annotations

import re

import pytest

from mlsec_platform.ops.quarantine import UnknownSource, exclude_from_curation
from mlsec_platform.ops.refusals import NotApplicable, UnknownName
from mlsec_platform.ops.s3_keys import UnknownIdentity, rotate_identity_keys
from mlsec_platform.ops.servers import NotLocalProfile, report_status, stop_servers
from mlsec_platform.ops.tokens import BROKER_AUDIENCE, TokenOptionsMismatch, TokenRequest
from mlsec_platform.settings import PlatformSettings, Profile


@pytest.fixture
def stack(tmp_path) -> PlatformSettings:
    return PlatformSettings(profile=Profile.STACK, state_dir=tmp_path)


def test_only_the_local_profile_has_embedded_servers(stack):
    said: list[str] = []
    for action in (report_status, stop_servers):
        with pytest.raises(NotLocalProfile, match="embedded servers of the `local` profile"):
            action(stack, said.append)
    assert said == []
    assert issubclass(NotLocalProfile, NotApplicable)


def test_unknown_names_are_refused_with_the_known_ones(stack):
    with pytest.raises(UnknownIdentity, match="^unknown identity mallory, zed; known: gateway, "):
        rotate_identity_keys(stack, ["zed", "auditor", "mallory"], print)
    with pytest.raises(UnknownSource, match="^unknown source nosuch; known: olist_customers, "):
        exclude_from_curation(stack, "nosuch", "batch-1", "test", print)
    assert issubclass(UnknownIdentity, UnknownName) and issubclass(UnknownSource, UnknownName)


BROKER = {
    "audience": BROKER_AUDIENCE,
    "groups": ("ops",),
    "project": "fraud",
    "purpose": "fraud_prevention",
    "clearance": "restricted",
}


@pytest.mark.parametrize(
    "options, refusal",
    [
        (
            {"audience": BROKER_AUDIENCE, "groups": ("g",)},
            "a broker token needs --project, --purpose, --clearance",
        ),
        ({**BROKER, "scopes": ("upload:*",)}, "--scope is for gateway tokens, not broker tokens"),
        (
            {"scopes": ("upload:*",), "project": "p", "entitlements": ("reveal",)},
            "--project, --entitlement: for broker tokens (--audience mlsec-broker)",
        ),
    ],
)
def test_token_requests_carry_the_claims_of_their_audience(options, refusal):
    with pytest.raises(TokenOptionsMismatch, match=f"^{re.escape(refusal)}$"):
        TokenRequest("alice", **options).check()


def test_consistent_token_requests_pass():
    TokenRequest("alice", scopes=("upload:olist_orders",)).check()
    TokenRequest("bob", entitlements=("reveal",), **BROKER).check()


def test_the_broker_audience_is_the_brokers():
    from broker_api.identity import BROKER_AUDIENCE as BROKERS

    assert BROKER_AUDIENCE == BROKERS
