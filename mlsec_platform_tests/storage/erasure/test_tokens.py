"""Forgetting a subject's tokens in the token vault (real S3, OpenBao, Postgres): the rows go,
no older version or log entry keeps them, a forget whose cut a crash prevented is cut by the
next run, and only the eraser's key (which only an erasure reads) may delete there: not the
pipeline, which mints, nor the lifecycle, which may not even read it."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from mlsec_platform.defs.resources import build_resources
from mlsec_platform.settings import Zone
from mlsec_platform.storage.erasure.tokens import forget_tokens
from mlsec_platform.storage.token_index import clear_index_cache
from mlsec_platform.storage.token_vault import TokenVault
from mlsec_platform_tests.helpers import s3_error_code


@pytest.fixture(scope="module")
def resources(supervisor, settings):
    return build_resources(settings)


@pytest.fixture
def minted(resources) -> tuple[str, dict[str, str]]:
    """A domain of this test alone, with three values minted by the pipeline, one per batch."""
    domain = f"e{uuid.uuid4().hex[:12]}"
    tokens = {}
    for value in ("keep", "erase-me", "erase-me-too"):
        vault = resources["token_vault"].for_batch()
        (tokens[value],) = vault.tokenize_many({"v": pa.array([value])}, domain)["v"].to_pylist()
    return domain, tokens


def _entries(lake, domain: str, **kwargs) -> DeltaTable:
    uri = lake.table_uri(Zone.TOKENS, f"{domain}/entries")
    return DeltaTable(uri, storage_options=lake.storage_options(), **kwargs)


def _forget(resources, eraser, domain: str, tokens: set[str]):
    return forget_tokens(eraser, domain, tokens, resources["warehouse"].connection)


def test_forgotten_tokens_resolve_to_nothing_in_any_version(resources, eraser, minted):
    domain, tokens = minted
    before = _entries(eraser, domain).version()
    doomed = {tokens["erase-me"], tokens["erase-me-too"]}
    done = _forget(resources, eraser, domain, doomed)
    assert (done.place, done.rows_removed) == (f"tokens/{domain}/entries", 2)
    assert done.version_after > before and done.files_removed >= 1
    assert done.log_entries_removed >= before  # every entry before the cut

    clear_index_cache()
    found = resources["token_vault"].for_batch().lookup(domain, ["keep", "erase-me"])
    assert found.to_pylist() == [tokens["keep"], None]
    vault = TokenVault.on_lake(eraser)
    assert vault.entries(domain, sorted(doomed)).num_rows == 0
    for version in range(done.version_after):  # their log entries are gone
        with pytest.raises(TableNotFoundError):
            _entries(eraser, domain, version=version)
    again = _forget(resources, eraser, domain, doomed)  # idempotent: nothing left, nothing cut
    assert not again.changed and again.version_before == _entries(eraser, domain).version()


def test_a_forget_whose_cut_a_crash_prevented_is_cut_by_the_next_run(resources, eraser, minted):
    domain, tokens = minted
    vault = TokenVault.on_lake(eraser)
    assert vault.forget(domain, [tokens["erase-me"]]).removed == 1  # then the process died
    done = _forget(resources, eraser, domain, {tokens["erase-me"]})
    assert done.rows_removed == 0 and done.version_after is not None
    assert done.log_entries_removed >= 1
    assert not [e for e in _entries(eraser, domain).history() if "mlsec.forgotten" in e]


def test_only_the_erasers_key_deletes_in_the_vault(resources, eraser, minted):
    """The pipeline mints (it appends, never removes); the lifecycle, a daily workload, may
    not even read the vault: only the eraser's key, which only an erasure reads, deletes."""
    domain, _ = minted
    lifecycle, pipeline = resources["lake_lifecycle"], resources["lake_pipeline"]
    bucket = eraser.bucket(Zone.TOKENS)
    listed = eraser.client().list_objects_v2(Bucket=bucket, Prefix=f"{domain}/entries/")
    key = next(o["Key"] for o in listed["Contents"] if o["Key"].endswith(".parquet"))
    refused = s3_error_code(lambda: pipeline.client().delete_object(Bucket=bucket, Key=key))
    assert refused == "AccessDenied"
    s3 = lifecycle.client()
    for call in (
        lambda: s3.get_object(Bucket=bucket, Key=key),
        lambda: s3.list_objects_v2(Bucket=bucket, Prefix=f"{domain}/"),
        lambda: s3.put_object(Bucket=bucket, Key=f"{domain}/lifecycle-was-here", Body=b"x"),
        lambda: s3.delete_object(Bucket=bucket, Key=key),
    ):
        assert s3_error_code(call) == "AccessDenied"
    assert s3_error_code(lambda: eraser.client().head_object(Bucket=bucket, Key=key)) is None
    assert s3_error_code(lambda: eraser.client().delete_object(Bucket=bucket, Key=key)) is None
    assert s3_error_code(lambda: eraser.client().head_object(Bucket=bucket, Key=key)) == "404"
