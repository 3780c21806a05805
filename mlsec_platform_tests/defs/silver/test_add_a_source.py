"""A personal-data file source reaches Silver from a contract, a catalog entry and a transform.

The three pieces are declared here and registered the way a developer adds them to their
modules; nothing else changes. The CSV goes through the real gateway over its API, the landing
sensor and Raw connector generated from the contract commit it, and the Silver asset and gate
generated from the catalog entry de-identify it as tagged, or refuse it.
"""

from __future__ import annotations

import io
import json

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable

from mlsec_platform.catalog import datasets, sources
from mlsec_platform.catalog.columns import DATE, PEOPLE, RAW_BATCH, S, col, key, token
from mlsec_platform.catalog.governance import DatasetSpec, Generalisation, Mask, PiiKind, Purpose
from mlsec_platform.catalog.sources import Column, Kind, SourceContract
from mlsec_platform.cli import main
from mlsec_platform.definitions import defs
from mlsec_platform.defs.resources import build_resources
from mlsec_platform.defs.silver.assets import silver_assets
from mlsec_platform.errors import ConfigurationError
from mlsec_platform.identities.vault_client import vault_client
from mlsec_platform.ops.operator import child_token
from mlsec_platform.privacy.reveal import REVEAL_POLICY, RevealDenied, reveal
from mlsec_platform.privacy.scrubbing import CPF, EMAIL
from mlsec_platform.quality.families import FAMILIES
from mlsec_platform.settings import Zone
from mlsec_platform.transforms import silver as silver_transforms
from mlsec_platform.transforms.silver import SilverTransform, latest
from mlsec_platform_tests.helpers import operator_vault, vault_as, vault_reader

# -- 1. The contract (catalog/sources.py) ------------------------------------------------------
LOYALTY_MEMBERS = SourceContract(
    "loyalty_members",
    "customers",
    1,
    ("member_id",),
    (
        Column("member_id", Kind.STRING, True),
        Column("member_email"),
        Column("member_cpf"),
        Column("member_state", Kind.STRING, True),
        Column("joined_on", Kind.DATE, True),
    ),
    "Members of the loyalty programme, with pt_BR personal data.",
)

# -- 2. The catalog entry (catalog/datasets.py, in SILVER) -------------------------------------
SILVER_LOYALTY_MEMBERS = DatasetSpec(
    Zone.SILVER,
    "loyalty_members",
    "customers",
    "Loyalty members, de-identified.",
    (
        key("member_id", "Member id."),
        token("email_token", "e-mail address", from_column="member_email", domain=PEOPLE),
        col(
            "email_domain",
            S,
            "Domain of the e-mail address.",
            pii=PiiKind.QUASI,
            mask=Mask.REDACT,
            generalised=Generalisation.EMAIL_DOMAIN,
            from_column="member_email",
        ),
        token("cpf_token", "CPF", from_column="member_cpf", domain=PEOPLE),
        key("member_state", "UF; the row-security key.", pii=PiiKind.QUASI, mask=Mask.REDACT),
        key("joined_on", "Day the member joined.", DATE),
        RAW_BATCH,
    ),
    key=("member_id",),
    purposes=frozenset({Purpose.CUSTOMER_SUPPORT, Purpose.MARKETING}),
    row_security_key="member_state",
)


# -- 3. The transform (transforms/silver.py, with @silver_transform) --------------------------
def loyalty_members() -> str:
    """Typed members, personal data as in Raw (the catalog entry de-identifies it)."""
    return latest(
        "member_id",
        "member_id, member_email, member_cpf, member_state, "
        "TRY_CAST(joined_on AS DATE) AS joined_on",
    )


MEMBERS = b"""member_id,member_email,member_cpf,member_state,joined_on
m-001,Ana.Souza@Exemplo.com.br,123.456.789-09,SP,2024-03-01
m-002,bruno.lima@correio.com,987.654.321-00,RJ,2024-05-17
m-003,carla@exemplo.com.br,111.444.777-35,MG,2025-01-09
m-004,Ana.Souza@Exemplo.com.br,,SP,2025-02-11
"""
#: A date that does not exist: the gateway and Raw keep text as sent, the Silver gate refuses it.
BAD_MEMBER = b"""member_id,member_email,member_cpf,member_state,joined_on
m-005,davi@exemplo.com,222.333.444-05,BA,2024-02-30
"""
CLEAR = [
    "Ana.Souza@Exemplo.com.br",
    "bruno.lima@correio.com",
    "carla@exemplo.com.br",
    "123.456.789-09",
    "987.654.321-00",
    "111.444.777-35",
    "davi@exemplo.com",
    "222.333.444-05",
]
RAW_KEY = dg.AssetKey(["raw", "loyalty_members"])
SILVER_KEY = dg.AssetKey(["silver", "loyalty_members"])


def register(monkeypatch: pytest.MonkeyPatch) -> None:
    """What adding the three pieces to their modules does."""
    monkeypatch.setitem(sources.FILE_SOURCES, LOYALTY_MEMBERS.name, LOYALTY_MEMBERS)
    for registry in (datasets.SILVER, datasets.CATALOG):  # CATALOG merges SILVER at import
        monkeypatch.setitem(registry, SILVER_LOYALTY_MEMBERS.id, SILVER_LOYALTY_MEMBERS)
    monkeypatch.setitem(
        silver_transforms.SILVER_TRANSFORMS,
        SILVER_LOYALTY_MEMBERS.id,
        SilverTransform(SILVER_LOYALTY_MEMBERS.id, LOYALTY_MEMBERS.name, loyalty_members()),
    )


@pytest.fixture(scope="module")
def resources(settings, supervisor):
    return build_resources(settings)


def upload_to_raw(definitions, gateway, uploader, instance, resources, body: bytes) -> str:
    """Upload through the gateway's API, then what the daemon does: evaluate the code
    location's landing sensor and run the Raw asset it requests."""
    response = gateway.put("/v1/files/loyalty_members", content=body, headers=uploader)
    assert response.status_code == 201, response.text
    batch = response.json()["batch_id"]
    sensor = definitions.resolve_sensor_def("landing_files_sensor")
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        result = sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    [request] = [r for r in result.run_requests if r.partition_key == batch]
    assert request.asset_selection == [RAW_KEY]
    assert request.job_name == "ingest_loyalty_members"  # the new source's own named job
    job = definitions.resolve_job_def(request.job_name)
    outcome = job.execute_in_process(instance=instance, partition_key=batch, tags=request.tags)
    assert outcome.success
    return batch


def curate(definitions, instance) -> dg.ExecuteInJobResult:
    return definitions.resolve_job_def("curated").execute_in_process(
        instance=instance, asset_selection=[SILVER_KEY], raise_on_error=False
    )


def silver_table(resources, version: int | None = None) -> tuple[pa.Table, int]:
    lake = resources["lake_pipeline"]
    table = DeltaTable(
        lake.table_uri(Zone.SILVER, "loyalty_members"),
        storage_options=lake.storage_options(),
        version=version,
    )
    rows = pa.table(table.to_pyarrow_dataset().to_table()).sort_by("member_id")
    return rows, table.version()


def assert_nothing_clear(table: pa.Table, where: str) -> None:
    for field in table.schema:
        if pa.types.is_string(field.type):
            values = table.column(field.name)
            assert not pc.any(pc.is_in(values, value_set=pa.array(CLEAR))).as_py(), where
            for pattern in (EMAIL, CPF):
                assert not pc.any(pc.match_substring_regex(values, pattern)).as_py(), where


def test_a_new_source_is_gated_and_de_identified_from_its_three_pieces(
    monkeypatch, gateway, uploader, resources, settings, endpoints
):
    register(monkeypatch)
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    assert set(graph.get(SILVER_KEY).parent_keys) == {RAW_KEY}
    assert sorted(c.name for c in graph.get(SILVER_KEY).check_keys) == sorted(FAMILIES)
    instance = dg.DagsterInstance.ephemeral()

    first = upload_to_raw(definitions, gateway, uploader, instance, resources, MEMBERS)
    result = curate(definitions, instance)
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert all(c.passed for c in checks) and sorted(c.check_name for c in checks) == sorted(
        FAMILIES
    )
    members, version = silver_table(resources)
    assert members.column_names == SILVER_LOYALTY_MEMBERS.column_names
    assert members.column("_raw_batch_id").to_pylist() == [first] * 4

    # Identifiers: tokenized, nowhere clear; quasi-identifiers generalised or kept, as tagged.
    assert_nothing_clear(members, "silver/loyalty_members")
    rows = members.to_pylist()
    assert [r["email_domain"] for r in rows] == [
        "exemplo.com.br",
        "correio.com",
        "exemplo.com.br",
        "exemplo.com.br",
    ]
    assert [r["member_state"] for r in rows] == ["SP", "RJ", "MG", "SP"]
    assert rows[3]["cpf_token"] is None  # no CPF given: nothing to tokenize

    # Tokens are the vault's: one per value in a domain (the vault finds the same for the
    # clear values), none for them in another domain.
    emails = [
        "Ana.Souza@Exemplo.com.br",
        "bruno.lima@correio.com",
        "carla@exemplo.com.br",
        "Ana.Souza@Exemplo.com.br",
    ]
    tokens = [r["email_token"] for r in rows]
    vault = resources["token_vault"].for_batch()
    assert vault.lookup(PEOPLE, emails).to_pylist() == tokens and tokens[0] == tokens[3]
    assert vault.lookup(PEOPLE, CLEAR[3:6]).to_pylist() == [r["cpf_token"] for r in rows[:3]]
    assert vault.lookup("sellers", emails).to_pylist() == [None] * 4

    # Only the reveal policy turns them back, through the vault and OpenBao; the pipeline's
    # identity cannot.
    operator = operator_vault(settings, endpoints)
    revealer = vault_client(operator.url, child_token(operator, REVEAL_POLICY))
    reader = vault_reader(settings, endpoints)
    clear = reveal(
        revealer,
        reader,
        tokens[:3],
        domain=PEOPLE,
        subject="support-1",
        reason="loyalty test",
        emit=lambda *_: None,
    )
    assert clear == emails[:3]
    with pytest.raises(RevealDenied):
        reveal(
            vault_as("pipeline", settings, endpoints).client(),
            reader,
            tokens[:1],
            domain=PEOPLE,
            subject="pipeline",
            reason="probe",
            emit=lambda *_: None,
        )

    # A batch with a row the gate refuses: quarantined, nothing committed.
    bad = upload_to_raw(definitions, gateway, uploader, instance, resources, BAD_MEMBER)
    refused = curate(definitions, instance)
    assert not refused.success
    [check] = [c for c in refused.get_asset_check_evaluations() if not c.passed]
    assert check.metadata["raw_batches"].value == [bad]
    assert check.metadata["failing_rows"].value == 1
    assert silver_table(resources) == (members, version)
    lake = resources["lake_pipeline"]
    prefix = check.metadata["quarantine"].value.split("/", 1)[1]
    assert prefix.startswith("gate/table/silver.loyalty_members/")
    s3, bucket = lake.client(), lake.bucket(Zone.QUARANTINE)
    kept = pq.read_table(
        io.BytesIO(s3.get_object(Bucket=bucket, Key=f"{prefix}/payload")["Body"].read())
    )
    assert kept.column("member_id").to_pylist() == ["m-005"]
    assert_nothing_clear(kept, "quarantine")  # the gate keeps de-identified rows only
    reason = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/reason.json")["Body"].read())
    assert {"column": "joined_on", "check": "not_nullable", "failures": "1"} in reason["checks"]

    # The operator sees the entry whole, personal columns masked; a wrong id or row count is
    # a usage error.
    entry_id = prefix.rsplit("/", 1)[1]
    shown = CliRunner().invoke(main, ["quarantine", "show", entry_id, "--rows", "3"])
    assert shown.exit_code == 0, shown.output
    assert "failing_rows: 1" in shown.output and bad in shown.output  # the Raw batch
    assert '"member_id": "m-005"' in shown.output
    assert '"email_token": "«personal»"' in shown.output
    assert '"column": "joined_on"' in shown.output
    for wrong in (["no-such-entry"], [entry_id, "--rows", "101"]):
        refused = CliRunner().invoke(main, ["quarantine", "show", *wrong])
        assert refused.exit_code == 2, refused.output


def test_a_catalog_entry_without_a_transform_stops_the_code_location(monkeypatch):
    monkeypatch.setitem(datasets.SILVER, SILVER_LOYALTY_MEMBERS.id, SILVER_LOYALTY_MEMBERS)
    with pytest.raises(ConfigurationError, match=r"without a transform \['silver/loyalty_"):
        silver_assets()
