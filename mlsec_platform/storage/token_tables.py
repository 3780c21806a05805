"""The token vault's two Delta tables per domain: their schemas and how their files are written
(``storage/token_vault.py`` reads and writes them)."""

import pyarrow as pa
from deltalake import ColumnProperties, WriterProperties

ENTRIES_SCHEMA = pa.schema(
    [
        pa.field("index", pa.binary(), nullable=False),
        pa.field("token", pa.string(), nullable=False),
        pa.field("ciphertext", pa.binary(), nullable=False),
        pa.field("key_id", pa.string(), nullable=False),
    ]
)
KEYS_SCHEMA = pa.schema(
    [
        pa.field("key_id", pa.string(), nullable=False),
        pa.field("wrapped", pa.string(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("run_id", pa.string()),
    ]
)
#: Rows per Parquet row group of ``entries``, measured on 1M rows (2026-12): 16k rows made a
#: run's full read of the index 3x slower (1.25 s against 0.41 s), 128k rows made a reveal of
#: one token read 128k rows (0.26 s against 0.10 s); a reveal of 100 tokens takes 0.65 s.
ROW_GROUP_ROWS = 65_536
_RANDOM = ColumnProperties(dictionary_enabled=False, statistics_enabled="NONE")
WRITER = WriterProperties(
    # Random bytes do not compress: trying costs time and saves nothing.
    compression="UNCOMPRESSED",
    max_row_group_size=ROW_GROUP_ROWS,
    column_properties={
        "index": _RANDOM,
        "ciphertext": _RANDOM,
        # Statistics kept: a reveal skips the row groups whose token range misses its tokens.
        "token": ColumnProperties(dictionary_enabled=False),
    },
)
#: Values a streamed mint (``TokenVault.mint_stream``, the Spark engine's) holds at once: with
#: their index, token and ciphertext about 150 bytes each beyond the value, so a chunk is some
#: 100 MiB whatever the batch. This is what bounds the Dagster run process's mint on the Spark
#: engine. Measured in a fresh run process (``bench/pipeline.py --spark-only``), the step raised
#: its peak by 264-270 MiB at 100k orders (one chunk) and 398-420 MiB at 300k (three): the part
#: beyond the chunk still grows with the values minted (bench/README.md). Each chunk is one
#: sorted run of ``entries`` (a reveal reads one row group per run its token could be in), so
#: chunks are large: 4.7M new values, the first load of 1M orders, make 10 runs.
MINT_CHUNK = 500_000
