"""The token vault against the real servers: the pipeline mints and finds tokens, only a
revealer opens them, concurrent mints agree, forgotten tokens resolve to nothing."""

from __future__ import annotations

import threading
import uuid
from contextlib import contextmanager

import hvac
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from hvac.exceptions import Forbidden

from mlsec_platform.catalog.governance import TOKEN_PATTERN
from mlsec_platform.defs.resources import build_resources
from mlsec_platform.privacy.tokens import (
    INDEX_KEY,
    INDEX_KEY_PATH,
    WRAP_KEY,
    open_sealed,
    unwrap_data_keys,
)
from mlsec_platform.resources.identity import identity_resources
from mlsec_platform.resources.vault import VaultAccessDenied
from mlsec_platform.settings import Zone
from mlsec_platform.storage.token_index import binary_rows, clear_index_cache
from mlsec_platform.storage.token_vault import TokenVault
from mlsec_platform_tests.helpers import audit_events, audit_head, s3_as, s3_error_code, vault_as


@pytest.fixture(scope="module")
def resources(settings, supervisor):
    return build_resources(settings)


@pytest.fixture
def domain() -> str:
    """A domain of this test alone: the session's curated data use ``customers``."""
    return f"t{uuid.uuid4().hex[:12]}"


def batch(resources) -> TokenVault:
    """A new batch's vault, as a Silver asset gets it (index key unwrapped afresh)."""
    return resources["token_vault"].for_batch()


def revealer_vault(settings, endpoints) -> tuple[TokenVault, hvac.Client]:
    chain = identity_resources(settings, "revealer", endpoints)
    return TokenVault.on_lake(chain.lake), chain.vault.client()


def reveal_plainly(settings, endpoints, domain: str, tokens: list[str]) -> list[str | None]:
    """What a revealer reads: entry -> unwrapped data key -> value."""
    vault, client = revealer_vault(settings, endpoints)
    rows = vault.entries(domain, tokens)
    keys = unwrap_data_keys(client, vault.wrapped_keys(domain, rows.column("key_id").to_pylist()))
    found = {
        t: open_sealed(keys[k], domain, t, c)
        for t, k, c in zip(*(rows.column(n).to_pylist() for n in rows.column_names), strict=True)
    }
    return [found.get(t) for t in tokens]


def test_same_value_same_token_in_every_column_and_batch(resources, domain, superuser_dsn):
    head = audit_head(superuser_dsn)
    first = batch(resources).tokenize_many(
        {
            "name": pa.chunked_array([["ana", None, "bia"], ["ana"]]),
            "email": pa.array(["x", "ana@example.com", "bia", None]).slice(1, 3),
        },
        domain,
    )
    name, email = first["name"].to_pylist(), first["email"].to_pylist()
    assert name[1] is None and email[2] is None  # null stays null
    assert name[0] == name[3] and name[2] == email[1]  # "bia" in both columns: one token
    assert all(TOKEN_PATTERN.fullmatch(t) for t in (name[0], name[2], email[0]))
    assert len({name[0], name[2], email[0]}) == 3

    clear_index_cache()  # a new run in another process: the vault is read from the lake
    later = batch(resources)
    again = later.tokenize_many({"who": pa.array(["bia", "ana", "carla"])}, domain)["who"]
    assert again.to_pylist()[:2] == [name[2], name[0]]
    assert later.minted[domain][0] == 1  # only "carla" was new
    assert later.lookup(domain, ["carla", "nobody", None]).to_pylist()[1:] == [None, None]

    minted = audit_events(superuser_dsn, "tokens.minted", head)
    assert [m["count"] for m in minted if m["domain"] == domain] == [3, 1]
    keys = DeltaTable(
        resources["lake_pipeline"].table_uri(Zone.TOKENS, f"{domain}/keys"),
        storage_options=resources["lake_pipeline"].storage_options(),
    )
    assert keys.version() == 1  # one data key per mint (versions 0 and 1)


def test_a_mint_writes_its_rows_in_one_commit_sorted_by_token(resources, domain):
    vault = batch(resources)
    values = [f"person-{i}@example.com" for i in range(5_000)]
    tokens = vault.tokenize_many({"email": pa.array(values)}, domain)["email"].to_pylist()
    uri = resources["lake_pipeline"].table_uri(Zone.TOKENS, f"{domain}/entries")
    table = DeltaTable(uri, storage_options=resources["lake_pipeline"].storage_options())
    assert table.version() == 0
    stored = table.to_pyarrow_table(columns=["token"]).column(0).to_pylist()
    assert stored == sorted(stored) and sorted(stored) == sorted(tokens)


def test_a_streamed_mint_holds_one_chunk_at_a_time_and_commits_once(
    resources, domain, settings, endpoints
):
    """The Spark engine's mint: new values arrive in batches and are sealed a chunk at a time
    (each chunk sorted by token on its own: 10 runs of 100), all in one commit of ``entries``
    under one data key whose nonces never repeat; every value opens for its token."""
    vault = batch(resources)
    values = [f"person-{i}@example.com" for i in range(1_000)]
    index = vault.index_key().digests(domain, pa.array(values))

    def new():  # the engine's anti-join, streamed: 64 rows a batch
        for start in range(0, 1_000, 64):
            yield pa.array(values[start : start + 64]), binary_rows(index[start : start + 64])

    assert vault.mint_stream(domain, new, chunk_values=100) == 1_000
    lake = resources["lake_pipeline"]
    uri = lake.table_uri(Zone.TOKENS, f"{domain}/entries")
    table = DeltaTable(uri, storage_options=lake.storage_options())
    assert table.version() == 0 and vault.minted[domain] == (1_000, 0)
    stored = table.to_pyarrow_table(columns=["token", "ciphertext", "key_id"])
    tokens = stored.column("token").to_pylist()
    runs = [tokens[i : i + 100] for i in range(0, 1_000, 100)]
    assert all(run == sorted(run) for run in runs) and tokens != sorted(tokens)
    nonces = {c[:12] for c in stored.column("ciphertext").to_pylist()}
    assert len(nonces) == 1_000 and len(set(stored.column("key_id").to_pylist())) == 1
    assert sorted(reveal_plainly(settings, endpoints, domain, tokens)) == sorted(values)
    # A stream with nothing new (the values all in the vault) commits nothing.
    assert batch(resources).mint_stream(domain, lambda: iter(()), chunk_values=100) == 0
    assert DeltaTable(uri, storage_options=lake.storage_options()).version() == 0


def test_a_stream_of_values_without_their_index_is_indexed_as_it_is_minted(resources, domain):
    """A first load on the Spark engine sends values only: the vault computes each chunk's
    index itself, the same index a lookup computes, so every value is found afterwards."""
    vault = batch(resources)
    values = [f"person-{i}@example.com" for i in range(250)]

    def new():  # 64 values a batch, no index
        for start in range(0, 250, 64):
            yield pa.array(values[start : start + 64]), None

    assert vault.mint_stream(domain, new, chunk_values=100) == 250
    later = batch(resources)
    tokens = later.lookup(domain, values).to_pylist()
    assert None not in tokens and len(set(tokens)) == 250
    again = later.tokenize_many({"v": pa.array(values)}, domain)["v"].to_pylist()
    assert again == tokens and later.minted[domain][0] == 0  # found, none minted twice


def test_only_a_revealer_opens_tokens(resources, domain, settings, endpoints):
    values = ["ana@example.com", "123.456.789-09", "João da Silva"]
    tokens = batch(resources).tokenize_many({"v": pa.array(values)}, domain)["v"].to_pylist()
    assert reveal_plainly(settings, endpoints, domain, tokens) == values
    assert reveal_plainly(settings, endpoints, domain, ["tok_" + "A" * 22]) == [None]

    rows = TokenVault.on_lake(resources["lake_pipeline"]).entries(domain, tokens)
    wrapped = TokenVault.on_lake(resources["lake_pipeline"]).wrapped_keys(
        domain, rows.column("key_id").to_pylist()
    )
    pipeline = vault_as("pipeline", settings, endpoints).client()
    with pytest.raises(Forbidden):  # OpenBao refuses: the pipeline cannot unwrap
        unwrap_data_keys(pipeline, wrapped)
    with pytest.raises(Forbidden):
        pipeline.secrets.transit.export_key(WRAP_KEY, "encryption-key")
    bucket, key = settings.bucket(Zone.TOKENS), f"{domain}/keys/_delta_log/" + "0" * 20 + ".json"
    # Only the pipeline (seals), the revealer (opens) and the eraser (an erasure's, which
    # unwraps nothing: identities/test_who_can_decrypt.py) read the vault's objects.
    for identity in ("broker", "gateway", "connector", "lifecycle", "auditor", "orchestrator"):
        s3 = s3_as(identity, settings, endpoints)
        code = s3_error_code(lambda s3=s3: s3.get_object(Bucket=bucket, Key=key))
        assert code == "AccessDenied", identity
    for identity in ("broker", "revealer"):
        with pytest.raises(VaultAccessDenied):  # the index key is the pipeline's alone
            vault_as(identity, settings, endpoints).read_kv(INDEX_KEY_PATH)
    revealer = vault_as("revealer", settings, endpoints)
    with pytest.raises(VaultAccessDenied):
        revealer.write(f"transit/decrypt/{INDEX_KEY}", ciphertext="vault:v1:AAAA")


def test_two_runs_minting_the_same_new_values_get_one_token_each(resources, domain):
    """Both runs look the values up and find nothing before either mints (the first to hold
    the domain's lock waits for the other to reach it); the second must then find the first's
    tokens under the lock instead of minting its own."""
    values = pa.array([f"v{i}" for i in range(300)])
    arrived, both_looked_up = [], threading.Event()
    runs = [batch(resources), batch(resources)]
    for vault in runs:
        lock, data_keys = vault._lock, vault._data_keys

        @contextmanager
        def counted(name, lock=lock):
            arrived.append(name)  # this run's lookup is done and found nothing
            if len(arrived) == 2:
                both_looked_up.set()
            with lock(name):
                yield

        def gated(data_keys=data_keys):
            assert both_looked_up.wait(30)
            return data_keys()

        vault._lock, vault._data_keys = counted, gated
    results: dict[int, list] = {}

    def run(i: int) -> None:
        results[i] = runs[i].tokenize_many({"v": values}, domain)["v"].to_pylist()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results[0] == results[1] and len(set(results[0])) == 300
    assert sorted(v.minted[domain][0] for v in runs) == [0, 300]
    clear_index_cache()
    uri = resources["lake_pipeline"].table_uri(Zone.TOKENS, f"{domain}/entries")
    stored = DeltaTable(uri, storage_options=resources["lake_pipeline"].storage_options())
    assert stored.to_pyarrow_table(columns=["token"]).num_rows == 300


def test_forgotten_tokens_resolve_to_nothing_in_any_version(
    resources, domain, settings, endpoints, supervisor
):
    vault = batch(resources)
    tokens = vault.tokenize_many({"v": pa.array(["keep", "erase-me"])}, domain)["v"].to_pylist()
    lake = resources["lake_pipeline"]
    uri = lake.table_uri(Zone.TOKENS, f"{domain}/entries")
    before = DeltaTable(uri, storage_options=lake.storage_options()).version()

    # Vacuuming needs the bucket's delete right, which no workload holds: the erasure side
    # brings its own keys (here the S3 admin's).
    admin = supervisor.seaweedfs.admin_credentials()
    options = {
        **lake.storage_options(),
        "AWS_ACCESS_KEY_ID": admin["access_key"],
        "AWS_SECRET_ACCESS_KEY": admin["secret_key"],
    }
    done = TokenVault(vault.root, lambda: options).forget(domain, [tokens[1]], retention_hours=0)
    assert done.removed == 1 and done.version == before + 1 and done.vacuumed

    clear_index_cache()
    assert batch(resources).lookup(domain, ["keep", "erase-me"]).to_pylist() == [tokens[0], None]
    assert reveal_plainly(settings, endpoints, domain, tokens) == ["keep", None]
    old = DeltaTable(uri, storage_options=options, version=before)
    with pytest.raises(OSError):  # the old version's files are gone
        old.to_pyarrow_table()


def test_rewrapping_keeps_every_token_and_value(resources, domain, settings, endpoints):
    from mlsec_platform_tests.helpers import operator_vault

    values = ["ana", "bia"]
    tokens = batch(resources).tokenize_many({"v": pa.array(values)}, domain)["v"].to_pylist()
    root = operator_vault(settings, endpoints)

    def rewrap(wrapped: list[str]) -> list[str]:
        out = root.secrets.transit.rewrap_data(
            WRAP_KEY, ciphertext="", batch_input=[{"ciphertext": w} for w in wrapped]
        )
        return [r["ciphertext"] for r in out["data"]["batch_results"]]

    assert TokenVault.on_lake(resources["lake_pipeline"]).rewrap(domain, rewrap) == 1
    clear_index_cache()
    assert batch(resources).lookup(domain, values).to_pylist() == tokens
    assert reveal_plainly(settings, endpoints, domain, tokens) == values


def test_after_a_forget_the_other_tokens_still_reveal_and_join(tmp_path):
    """A forget rewrites the vault from Arrow with its own schema: a Delta DELETE wrote the
    file holding the rest with string views, and the reveal's filter failed on them
    ('greater_equal' has no kernel for string and string_view)."""
    from mlsec_platform_tests.helpers import local_token_vault

    vault = local_token_vault(tmp_path)
    values = [f"value-{i}" for i in range(1000)]
    tokens = vault.tokenize_many({"v": pa.array(values)}, "people")["v"].to_pylist()
    later = vault.tokenize_many({"v": pa.array(["later"])}, "people")["v"].to_pylist()
    done = vault.forget("people", [tokens[5]], retention_hours=0)
    assert done.removed == 1 and done.vacuumed
    kept = vault.entries("people", [tokens[7], later[0], tokens[5]])
    assert sorted(kept.column("token").to_pylist()) == sorted([tokens[7], later[0]])
    clear_index_cache()
    found = vault.lookup("people", ["value-7", "value-5", "later"]).to_pylist()
    assert found == [tokens[7], None, later[0]]
    assert vault.tokenize_many({"v": pa.array(["value-5"])}, "people")["v"].to_pylist() != [
        tokens[5]
    ]  # minted afresh: the old token is gone for good


def test_an_empty_batch_gets_empty_token_columns(tmp_path):
    """An incremental run whose batch has no rows of a table tokenizes nothing: it failed
    with 'Chunk index out of range' (no chunk to take the dictionary from)."""
    from mlsec_platform_tests.helpers import local_token_vault

    vault = local_token_vault(tmp_path)
    empty = pa.chunked_array([], pa.string())
    tokens = vault.tokenize_many({"email": empty, "name": pa.array([], pa.string())}, "people")
    assert {k: (v.type, len(v)) for k, v in tokens.items()} == {
        "email": (pa.string(), 0),
        "name": (pa.string(), 0),
    }
