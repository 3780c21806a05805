"""Who can decrypt what: the README's table, the OpenBao policies, and OpenBao itself agree.

The table names every OpenBao policy once and says, per policy, whether it can export a key,
unwrap a data key of the token vault (``token-wrap``), unwrap the index key (``token-index``)
and reveal (unwrap a data key and read the vault). The first test reads each answer off the
policy files (with the S3 policies, for reading the vault); OpenBao holds exactly those files;
and every workload identity, logged in through its own AppRole, is refused by OpenBao what the
table says it cannot do, while the ``revealer`` reveals and the ``pipeline`` finds tokens.
"""

from __future__ import annotations

import json
import re
import uuid
from fnmatch import fnmatchcase
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pytest
from hvac.exceptions import Forbidden

from mlsec_platform.identities.catalog import S3_IDENTITIES
from mlsec_platform.privacy.reveal import reveal
from mlsec_platform.privacy.tokens import INDEX_KEY, INDEX_KEY_PATH, WRAP_KEY
from mlsec_platform.resources.identity import identity_resources
from mlsec_platform.storage.token_vault import TokenVault
from mlsec_platform_tests.helpers import operator_vault, vault_as

README = Path(__file__).resolve().parents[2] / "README.md"
POLICIES = resources.files("mlsec_platform.identities").joinpath("policies")
COLUMNS = ("export", "unwrap token-wrap", "unwrap token-index", "reveal")
RULE = re.compile(r'path\s+"([^"]+)"\s*\{\s*capabilities\s*=\s*\[([^\]]*)\]\s*\}')
#: The workload identities of the acceptance: none may export a key or open a token.
WORKLOADS = ("pipeline", "connector", "gateway", "broker", "lifecycle", "auditor", "orchestrator")


def readme_table() -> dict[str, dict[str, bool]]:
    """Policy -> {column: yes/no}, as the README's table says."""
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| OpenBao policy"))
    rows: dict[str, dict[str, bool]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        first, *cells = [c.strip() for c in line.strip("|").split("|")]
        assert set(cells) <= {"yes", "no"} and len(cells) == len(COLUMNS), line
        for policy in re.findall(r"`([a-z0-9-]+)`", first):
            assert policy not in rows, f"{policy} is in two rows"
            rows[policy] = dict(zip(COLUMNS, (c == "yes" for c in cells), strict=True))
    return rows


def rules(hcl: str) -> list[tuple[str, set[str]]]:
    return [(p, set(re.findall(r'"(\w+)"', caps))) for p, caps in RULE.findall(hcl)]


def allows(hcl: str, path: str, capability: str) -> bool:
    """Whether a rule of ``hcl`` grants ``capability`` on ``path``, matched as OpenBao matches:
    ``+`` is one path segment, a ``*`` at the end any rest."""
    for pattern, capabilities in rules(hcl):
        prefix = pattern.endswith("*")
        parts = [re.escape(p) for p in pattern.removesuffix("*").split("+")]
        regex = "[^/]+".join(parts) + (".*" if prefix else "")
        if capability in capabilities and re.fullmatch(regex, path):
            return True
    return False


def reads_the_vault_bucket(name: str) -> bool:
    """Whether ``name``'s S3 keys may get objects from the tokens bucket."""
    s3 = POLICIES.joinpath("s3", f"{name}.json")
    if not s3.is_file():
        return False
    vault_object = "arn:aws:s3:::${prefix}tokens/any"
    return any(
        st["Effect"] == "Allow"
        and any(fnmatchcase("s3:GetObject", a) for a in st["Action"])
        and any(fnmatchcase(vault_object, r) for r in st["Resource"])
        for st in json.loads(s3.read_text())["Statement"]
    )


def what_a_policy_can(name: str, hcl: str) -> dict[str, bool]:
    exports = [
        f"transit/export/{kind}/{key}{version}"
        for kind in ("encryption-key", "hmac-key", "signing-key")
        for key in (WRAP_KEY, INDEX_KEY)
        for version in ("", "/1", "/latest")
    ] + [f"transit/backup/{key}" for key in (WRAP_KEY, INDEX_KEY)]
    unwrap = allows(hcl, f"transit/decrypt/{WRAP_KEY}", "update")
    s3_keys = [i.name for i in S3_IDENTITIES if allows(hcl, f"mlsec/data/s3/{i.name}", "read")]
    return {
        "export": any(allows(hcl, path, "read") for path in exports),
        "unwrap token-wrap": unwrap,
        "unwrap token-index": allows(hcl, f"transit/decrypt/{INDEX_KEY}", "update"),
        "reveal": unwrap and any(reads_the_vault_bucket(n) for n in s3_keys),
    }


def policy_files() -> dict[str, str]:
    folder = POLICIES.joinpath("vault")
    return {f.name.removesuffix(".hcl"): f.read_text() for f in folder.iterdir()}


def test_the_table_names_every_policy_once_and_says_what_its_file_grants():
    table, files = readme_table(), policy_files()
    assert set(table) == set(files)
    for name, hcl in files.items():
        assert what_a_policy_can(name, hcl) == table[name], name
    assert {n for n, can in table.items() if can["reveal"]} == {"revealer", "reveal"}
    assert not any(can["export"] for can in table.values())


def test_the_matcher_reads_globs_as_openbao_does():
    hcl = 'path "transit/decrypt/*" { capabilities = ["update"] }\n'
    hcl += 'path "mlsec/data/+/revealer" { capabilities = ["read"] }'
    assert allows(hcl, "transit/decrypt/token-wrap", "update")
    assert not allows(hcl, "transit/decrypt/token-wrap", "read")
    assert allows(hcl, "mlsec/data/s3/revealer", "read")
    assert not allows(hcl, "mlsec/data/s3/x/revealer", "read")
    assert what_a_policy_can("x", hcl)["reveal"]  # a glob that grants decrypt grants reveal


def test_openbao_holds_exactly_the_policy_files(supervisor, settings, endpoints):
    root = operator_vault(settings, endpoints)
    for name, hcl in policy_files().items():
        assert root.sys.read_policy(name)["data"]["rules"] == hcl, name


@pytest.fixture(scope="module")
def minted(supervisor, settings, endpoints):
    """A real token of a domain of this module's own, its value and its wrapped data key."""
    from mlsec_platform.defs.resources import build_resources

    domain = f"w{uuid.uuid4().hex[:12]}"
    built = build_resources(settings)
    vault = built["token_vault"].for_batch()
    (token,) = vault.tokenize_many({"v": pa.array(["ana@example.com"])}, domain)["v"].to_pylist()
    (wrapped,) = TokenVault.on_lake(built["lake_pipeline"]).wrapped_keys(domain).values()
    index_key = vault_as("pipeline", settings, endpoints).read_kv(INDEX_KEY_PATH)["wrapped"]
    return domain, token, wrapped, index_key


@pytest.mark.parametrize("identity", WORKLOADS)
def test_no_workload_can_export_a_key_or_open_a_token(identity, minted, settings, endpoints):
    domain, token, wrapped, index_key = minted
    client = vault_as(identity, settings, endpoints).client()
    for key in (WRAP_KEY, INDEX_KEY):
        with pytest.raises(Forbidden):
            client.secrets.transit.export_key(key, "encryption-key")
    with pytest.raises(Forbidden):
        client.secrets.transit.decrypt_data(WRAP_KEY, wrapped)
    if identity == "pipeline":  # finds tokens: the index key unwraps for it, nothing else
        assert client.secrets.transit.decrypt_data(INDEX_KEY, index_key)["data"]["plaintext"]
    else:
        with pytest.raises(Forbidden):
            client.secrets.transit.decrypt_data(INDEX_KEY, index_key)


def test_the_revealer_reveals_and_does_nothing_else(minted, settings, endpoints):
    domain, token, wrapped, index_key = minted
    chain = identity_resources(settings, "revealer", endpoints)
    client = chain.vault.client()
    values = reveal(
        client,
        TokenVault.on_lake(chain.lake),
        [token],
        domain=domain,
        subject="t",
        reason="who can decrypt test",
        emit=lambda *_: None,
    )
    assert values == ["ana@example.com"]
    for key in (WRAP_KEY, INDEX_KEY):
        with pytest.raises(Forbidden):
            client.secrets.transit.export_key(key, "encryption-key")
    with pytest.raises(Forbidden):
        client.secrets.transit.decrypt_data(INDEX_KEY, index_key)
