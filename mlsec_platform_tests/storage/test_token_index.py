"""Finding a batch's values in the vault's index: exact on all 32 bytes, one token per value."""

import numpy as np
import pyarrow as pa

from mlsec_platform.storage.token_index import binary_rows, index_rows, match_tokens, rechunked


def _rows(*heads_and_tails: tuple[int, int]) -> np.ndarray:
    rows = np.zeros((len(heads_and_tails), 32), np.uint8)
    for i, (head, tail) in enumerate(heads_and_tails):
        rows[i, :8] = np.frombuffer(head.to_bytes(8, "little"), np.uint8)
        rows[i, 31] = tail
    return rows


def test_values_sharing_the_first_bytes_are_told_apart():
    known_rows = _rows((7, 1), (9, 0))
    known = pa.table({"index": binary_rows(known_rows), "token": ["tok_a", "tok_b"]})
    found, tokens = match_tokens(_rows((7, 2), (7, 1), (8, 0)), known)
    assert found.tolist() == [False, True, False]  # (7, 2) shares its head with (7, 1) only
    assert tokens.to_pylist() == [None, "tok_a", None]


def test_two_tokens_for_one_value_resolve_to_the_smallest_every_time():
    rows = _rows((5, 5), (5, 5))
    known = pa.table({"index": binary_rows(rows), "token": ["tok_z", "tok_m"]})
    found, tokens = match_tokens(_rows((5, 5), (6, 6)), known)
    assert found.tolist() == [True, False] and tokens.to_pylist() == ["tok_m", None]


def test_index_rows_read_chunked_and_sliced_columns():
    rows = np.arange(32 * 5, dtype=np.uint8).reshape(5, 32) % 251
    column = pa.chunked_array([binary_rows(rows[:2]), binary_rows(rows[2:]).slice(1)])
    assert np.array_equal(index_rows(column), np.concatenate([rows[:2], rows[3:]]))


def test_rechunked_holds_one_chunk_and_the_batch_being_read_at_most():
    values = [f"v{i}" for i in range(1_000)]
    rows = np.arange(32 * 1_000, dtype=np.uint32).astype(np.uint8).reshape(1_000, 32)
    pulled = 0

    def batches():  # as the engine streams them: 30 rows each
        nonlocal pulled
        for start in range(0, 1_000, 30):
            pulled = min(start + 30, 1_000)
            yield pa.array(values[start : start + 30]), binary_rows(rows[start : start + 30])

    passed_on, out = 0, []
    for chunk, index in rechunked(batches(), 100):
        passed_on += len(chunk)
        assert len(chunk) == len(index) <= 100
        assert pulled - passed_on < 30  # nothing read beyond the batch this chunk ends in
        out.extend(chunk.to_pylist())
        assert np.array_equal(index_rows(index), rows[passed_on - len(chunk) : passed_on])
    assert out == values


def test_rechunked_passes_values_without_an_index_on_as_such():
    batches = [(pa.array([f"v{i}" for i in range(s, s + 30)]), None) for s in range(0, 90, 30)]
    chunks = list(rechunked(iter(batches), 40))
    assert [len(c) for c, _ in chunks] == [40, 40, 10]
    assert all(index is None for _, index in chunks)
    assert [v for c, _ in chunks for v in c.to_pylist()] == [f"v{i}" for i in range(90)]
