"""Reference data the curated zones join against."""

import dagster as dg
import pyarrow as pa

# IBGE code, UF, name, macro-region: the 27 federative units of Brazil.
_BR_STATES = [
    (11, "RO", "Rondônia", "Norte"),
    (12, "AC", "Acre", "Norte"),
    (13, "AM", "Amazonas", "Norte"),
    (14, "RR", "Roraima", "Norte"),
    (15, "PA", "Pará", "Norte"),
    (16, "AP", "Amapá", "Norte"),
    (17, "TO", "Tocantins", "Norte"),
    (21, "MA", "Maranhão", "Nordeste"),
    (22, "PI", "Piauí", "Nordeste"),
    (23, "CE", "Ceará", "Nordeste"),
    (24, "RN", "Rio Grande do Norte", "Nordeste"),
    (25, "PB", "Paraíba", "Nordeste"),
    (26, "PE", "Pernambuco", "Nordeste"),
    (27, "AL", "Alagoas", "Nordeste"),
    (28, "SE", "Sergipe", "Nordeste"),
    (29, "BA", "Bahia", "Nordeste"),
    (31, "MG", "Minas Gerais", "Sudeste"),
    (32, "ES", "Espírito Santo", "Sudeste"),
    (33, "RJ", "Rio de Janeiro", "Sudeste"),
    (35, "SP", "São Paulo", "Sudeste"),
    (41, "PR", "Paraná", "Sul"),
    (42, "SC", "Santa Catarina", "Sul"),
    (43, "RS", "Rio Grande do Sul", "Sul"),
    (50, "MS", "Mato Grosso do Sul", "Centro-Oeste"),
    (51, "MT", "Mato Grosso", "Centro-Oeste"),
    (52, "GO", "Goiás", "Centro-Oeste"),
    (53, "DF", "Distrito Federal", "Centro-Oeste"),
]

BR_STATES_SCHEMA = pa.schema(
    [
        pa.field("ibge_code", pa.int16(), nullable=False),
        pa.field("uf", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("region", pa.string(), nullable=False),
    ]
)


@dg.asset(
    key=["silver", "br_states"],
    group_name="reference",
    io_manager_key="lakehouse_io_manager",
    code_version="1",
    kinds={"delta", "s3"},
    owners=["team:data-platform"],
    tags={"zone": "silver", "domain": "reference"},
)
def br_states() -> pa.Table:
    """The 27 Brazilian federative units (IBGE code, UF, name, macro-region).

    Joined by customer and seller state in Gold (sales by state and region). Written by the
    `pipeline` identity into the Silver zone as one Delta commit.
    """
    return pa.Table.from_pylist(
        [dict(zip(BR_STATES_SCHEMA.names, row, strict=True)) for row in _BR_STATES],
        schema=BR_STATES_SCHEMA,
    )


reference_data_job = dg.define_asset_job(
    "reference_data",
    selection=dg.AssetSelection.groups("reference"),
    description="Reference tables (no outside input).",
)


@dg.asset_check(asset=br_states, blocking=True, description="All 27 UFs, each exactly once.")
def br_states_complete(br_states: pa.Table) -> dg.AssetCheckResult:
    ufs = br_states.column("uf").to_pylist()
    return dg.AssetCheckResult(
        passed=len(ufs) == 27 and len(set(ufs)) == 27,
        metadata={"rows": len(ufs), "distinct_uf": len(set(ufs))},
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[br_states], asset_checks=[br_states_complete], jobs=[reference_data_job]
    )
