"""The lake's Delta client takes its configuration from the lake resource, never from the shell.

delta-rs reads every environment variable named like one of its S3 keys (with or without
``AWS_``): the README's own ``export TOKEN=...`` became the S3 session token of every Raw
write in that shell. Each key that can be pinned is; the proxy keys, which cannot, are refused.
"""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from mlsec_platform.resources.identity import identity_resources
from mlsec_platform.resources.s3_lake import (
    PINNED_LAKE_OPTIONS,
    AmbientLakeSetting,
    refuse_ambient_lake_settings,
)
from mlsec_platform.settings import Zone

#: Variables a shell may hold that delta-rs would otherwise apply to the lake's requests.
HOSTILE_ENVIRONMENT = {
    "TOKEN": "a-broker-token-from-the-readme",
    "SESSION_TOKEN": "x",
    "AWS_SESSION_TOKEN": "x",
    "SKIP_SIGNATURE": "true",
    "UNSIGNED_PAYLOAD": "true",
    "VIRTUAL_HOSTED_STYLE_REQUEST": "true",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "true",
    "ALLOW_INVALID_CERTIFICATES": "true",
    "IMDSV1_FALLBACK": "true",
    "CONDITIONAL_PUT": "disabled",
    "ENDPOINT": "http://127.0.0.1:9",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "REGION": "eu-west-9",
    "ACCESS_KEY_ID": "AKIANOTOURS",
    "SECRET_ACCESS_KEY": "not-ours",
}


@pytest.mark.parametrize("name", ["PROXY_URL", "aws_proxy_url", "PROXY_CA_CERTIFICATE"])
def test_a_proxy_for_the_lake_is_refused_with_the_variable_named(name):
    with pytest.raises(AmbientLakeSetting, match=f"sets {name}, which the Delta client"):
        refuse_ambient_lake_settings({name: "http://127.0.0.1:9", "PATH": "/bin"})
    refuse_ambient_lake_settings({"PATH": "/bin", "HTTPS_PROXY_NOTE": "x"})


def test_every_pinned_option_is_stated_in_the_options(settings, endpoints):
    lake = identity_resources(settings, "pipeline", endpoints).lake
    options = lake.storage_options()
    assert PINNED_LAKE_OPTIONS.items() <= options.items()


def test_delta_reads_and_writes_ignore_the_shell(settings, endpoints, monkeypatch):
    lake = identity_resources(settings, "pipeline", endpoints).lake
    uri = lake.table_uri(Zone.SILVER, f"ambient_{uuid.uuid4().hex[:8]}")
    options = lake.storage_options()  # read before the shell is poisoned: Vault is not the point
    for name, value in HOSTILE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    write_deltalake(uri, pa.table({"k": [1, 2]}), storage_options=options)
    write_deltalake(uri, pa.table({"k": [3]}), storage_options=options, mode="append")
    table = DeltaTable(uri, storage_options=options)
    assert table.version() == 1
    assert sorted(table.to_pyarrow_table()["k"].to_pylist()) == [1, 2, 3]
