"""The token vault's index: transit's `hmac` endpoint against the index key unwrapped per batch.

A run must look up every distinct identifier value it tokenizes (1M orders: 4.7-5.4M). Real
path measured: OpenBao's `transit/hmac/token-index` in batches, as the pipeline would call it
(one connection and two, the server being CPU-bound). Baseline in the same run: what the vault
does (`privacy/tokens.py`): HMAC-SHA256 here with the index key unwrapped once per batch, on
one process and on two. Also printed: minting (index, token, seal, one Delta commit) through
the real vault, per value.

    .venv/bin/python bench/token_vault.py --values 200000
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hvac  # noqa: E402
import pyarrow as pa  # noqa: E402
from _stack import benchmark_stack, report  # noqa: E402

from mlsec_platform.defs.resources import build_resources  # noqa: E402
from mlsec_platform.identities.vault_client import vault_client
from mlsec_platform.privacy.tokens import INDEX_KEY, fetch_index_key  # noqa: E402
from mlsec_platform.resources.vault import VaultResource  # noqa: E402

BATCH = 10_000


def values(n: int) -> list[str]:
    return [f"person-{i}@example.com.br" for i in range(n)]


def transit_hmac(root: hvac.Client, items: list[str], connections: int) -> float:
    """Values per second through transit's hmac endpoint, ``connections`` clients at once."""
    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    clients = [vault_client(root.url, root.token) for _ in range(connections)]

    def send(job: tuple[int, list[str]]) -> None:
        i, batch = job
        inputs = [{"input": base64.b64encode(v.encode()).decode()} for v in batch]
        # hvac's generate_hmac has no batch_input: the endpoint itself takes one.
        answer = clients[i % connections].write_data(
            f"transit/hmac/{INDEX_KEY}/sha2-256", data={"batch_input": inputs}
        )
        assert len(answer["data"]["batch_results"]) == len(batch)

    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(send, enumerate(batches)))
    return len(items) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", type=int, default=200_000)
    args = parser.parse_args()
    items = values(args.values)
    array = pa.array(items)
    with benchmark_stack() as settings:
        resources = build_resources(settings)
        pipeline: VaultResource = resources["vault_pipeline"]
        # Transit's hmac as the bootstrap token calls it: no identity's policy grants hmac on
        # token-index (none needs it), and the server's cost is the same for any token.
        from mlsec_platform.stack.bootstrap import BootstrapCredentials

        root = BootstrapCredentials.load(settings).vault(settings.endpoints())

        key = fetch_index_key(pipeline)
        rates = {}
        for workers in (1, 2):
            started = time.perf_counter()
            key.digests("customers", array, workers)
            rates[workers] = len(items) / (time.perf_counter() - started)
        transit = {c: transit_hmac(root, items, c) for c in (1, 2)}
        for c in (1, 2):
            print(f"transit hmac, {c} connection(s): {transit[c]:,.0f} values/s")
        for w in (1, 2):
            print(f"local HMAC, {w} process(es): {rates[w]:,.0f} values/s")

        vault = resources["token_vault"].for_batch()
        started = time.perf_counter()
        vault.tokenize_many({"v": array}, f"bench{uuid.uuid4().hex[:8]}")
        minted = len(items) / (time.perf_counter() - started)
        print(f"mint through the vault (index, tokens, seal, commits): {minted:,.0f} values/s")
        report(
            f"Index of {len(items):,} values, best of each",
            max(transit.values()),
            max(rates.values()),
            "values/s",
            "the vault's index must not cost a run minutes: 5.4M values per 1M orders",
        )


if __name__ == "__main__":
    main()
