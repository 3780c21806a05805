"""De-identification of a Silver batch on the Spark engine, as its catalog entry tags it.

The same plan as on DuckDB (``privacy/deidentify.py``): generalised columns computed, tokenized
columns replaced by their tokens, identifiers in scrubbed text replaced by theirs, clear columns
dropped. Here every step is a query on the engine; the batch never comes to this process.

Tokens: per domain, the engine computes the batch's distinct values and their vault index
(HMAC-SHA256 under the index key, in SQL: two SHA-256 passes over the key's padded forms) and
anti-joins them with the vault's ``entries`` table (read on the engine from the tokens bucket),
in one pass under the domain's lock; only values the vault has never seen come here, streamed
a batch at a time, to be minted in fixed-size chunks (sealed here, all appended to the vault in
one commit): this process holds one chunk of new values at most, whatever the batch. On a
first load (no vault yet) nothing is anti-joined, so the engine sends the values alone and the
vault indexes each chunk as it seals it (as DuckDB's path does), with no HMAC in SQL. Then each
row's columns find their tokens on the engine by their index in the vault's new version. After
the first load, a batch of new customers brings only its new people's identifiers. Chosen over
a UDF with a per-batch key: tokens are random, minted once and looked up ever after, so a
value's token lives in the vault and no function of the value alone can produce it on the
engine.

The index key reaches the engine as a one-row table of the batch's query (never in SQL text,
which error messages quote); the engine is the pipeline identity's own loopback process.

Scrubbed text: identifiers are found on the engine with the same pattern (``privacy/
scrubbing.py``), tokenized with their domain, and each text is rebuilt on the engine from the
pieces between its identifiers and their tokens in order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from mlsec_platform.privacy.deidentify import PrivacyPlan
from mlsec_platform.privacy.generalisation import SPARK_EXPRESSIONS
from mlsec_platform.privacy.scrubbing import IDENTIFIERS
from mlsec_platform.storage.token_vault import TokenVault
from mlsec_platform.transforms.spark import arrow_batches

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: The identifier pattern as a Spark SQL string literal.
PATTERN = "'" + IDENTIFIERS.pattern.replace("\\", "\\\\").replace("'", "\\'") + "'"
#: HMAC-SHA256(key, domain || NUL || value) over the key columns ``_ki`` (the inner padded key
#: and the domain prefix) and ``_ko`` (the outer padded key): the vault's index of ``value``.
INDEX_SQL = "unhex(sha2(concat(_ko, unhex(sha2(concat(_ki, encode({value}, 'UTF-8')), 256))), 256))"


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def deidentify_on_engine(
    spark: SparkSession,
    frame: DataFrame,
    plan: PrivacyPlan,
    vault: TokenVault | None,
    key: tuple[str, ...],
) -> DataFrame:
    """``frame`` (the transform's rows on the engine) de-identified per ``plan``."""
    from pyspark.sql import functions as F  # noqa: N812 - only on Spark

    for c in plan.generalised:
        frame = frame.withColumn(
            c.name, F.expr(SPARK_EXPRESSIONS[c.generalised](_q(c.from_column)))
        )
    domains = {c.token_domain for c in (*plan.tokenized, *plan.scrubbed)}
    if domains and vault is None:
        raise ValueError(f"{plan.dataset}: tokens need the token vault")
    for domain in sorted(domains):
        tokenized = [c for c in plan.tokenized if c.token_domain == domain]
        scrubbed = [c for c in plan.scrubbed if c.token_domain == domain]
        keys = index_key_frame(spark, vault, domain)
        mint_on_engine(vault, domain, domain_values(frame, tokenized, scrubbed), keys)
        entries = _entries(spark, vault, domain)
        # Each row's columns (and each identifier in a text) are looked up by their index,
        # computed on the row: the batch's distinct values are not computed again.
        frame = _tokenized(frame, [c.from_column for c in tokenized], keys, entries, tokenized)
        if scrubbed:
            frame = _scrubbed(frame, [c.name for c in scrubbed], keys, entries, key)
    return frame.drop(*plan.clear_columns)


def domain_values(frame: DataFrame, tokenized: list, scrubbed: list) -> DataFrame:
    """Every value of one domain in ``frame`` (column ``value``): the tokenized columns' values
    and the identifiers in the scrubbed texts.

    The tokenized columns come out of ONE scan, each row's values exploded from an array: Sail
    0.7 caches nothing, so a union of one select per column computed the batch's transform
    (Raw read, typed, deduplicated) once per column, six times for ``silver/customers``."""
    from pyspark.sql import functions as F  # noqa: N812 - only on Spark

    values = []
    if tokenized:
        columns = [F.col(c.from_column).cast("string") for c in tokenized]
        values.append(frame.select(F.explode(F.array(*columns)).alias("value")))
    values += [
        frame.select(
            F.explode(F.expr(f"regexp_extract_all({_q(c.name)}, {PATTERN}, 0)"))
        ).withColumnRenamed("col", "value")
        for c in scrubbed
    ]
    union = values[0]
    for more in values[1:]:
        union = union.unionByName(more)
    return union


def index_key_frame(spark: SparkSession, vault: TokenVault, domain: str) -> DataFrame:
    """The one-row table ``_ki, _ko`` of :data:`INDEX_SQL` for ``domain``."""
    prefix = domain.encode() + b"\0"
    padded = vault.index_key().key.ljust(64, b"\0")
    keys = pa.table(
        {
            "_ki": pa.array([bytes(b ^ 0x36 for b in padded) + prefix], pa.binary()),
            "_ko": pa.array([bytes(b ^ 0x5C for b in padded)], pa.binary()),
        }
    )
    return spark.createDataFrame(keys)


def mint_on_engine(vault: TokenVault, domain: str, values: DataFrame, keys: DataFrame) -> DataFrame:
    """Mint the distinct non-null values of ``values`` (column ``value``) the vault lacks; the
    distinct values and their index (``value, idx``) are returned, as a query.

    One pass on the engine, under the domain's lock: the batch's distinct values, their index,
    anti-joined with the vault as it is then, streamed here a batch at a time and minted in
    fixed-size chunks (``TokenVault.mint_stream``): this process never holds a domain's new
    values at once, and sends nothing back (the engine reads the vault's new version)."""
    from pyspark.sql import functions as F  # noqa: N812 - only on Spark

    unique = values.where(F.col("value").isNotNull()).distinct()
    distinct = unique.crossJoin(keys).select(
        "value", F.expr(INDEX_SQL.format(value="value")).alias("idx")
    )

    def new() -> Iterator[tuple[pa.Array, pa.Array | None]]:
        entries = _entries(values.sparkSession, vault, domain)  # as it is under the lock
        if entries is None:
            # No vault yet (a first load): every value is new, nothing to anti-join, so the
            # engine sends each value alone and the vault indexes it while it seals it (as
            # DuckDB's path does): no HMAC in SQL, 32 bytes less a row on the wire.
            for batch in arrow_batches(unique):
                yield batch.column("value").combine_chunks(), None
            return
        missing = distinct.join(entries, distinct["idx"] == entries["index"], "left_anti")
        for batch in arrow_batches(missing.select("value", "idx")):
            yield batch.column("value").combine_chunks(), batch.column("idx").combine_chunks()

    vault.mint_stream(domain, new)
    return distinct


def _tokenized(frame, columns, keys, entries, specs) -> DataFrame:
    """``frame`` with each of ``specs``' columns set to the token of its ``columns`` value."""
    from pyspark.sql import functions as F  # noqa: N812 - only on Spark

    if entries is None:  # nothing in the batch and nothing in the vault: every value is null
        for c in specs:
            frame = frame.withColumn(c.name, F.lit(None).cast("string"))
        return frame
    # Two tokens for one value only if a mint bypassed the lock: the smallest wins, as on DuckDB.
    tokens = entries.groupBy("index").agg(F.min("token").alias("token"))
    frame = frame.crossJoin(keys)
    for i, (column, c) in enumerate(zip(columns, specs, strict=True)):
        idx, t = f"_idx_{i}", f"_token_{i}"
        frame = frame.withColumn(idx, F.expr(INDEX_SQL.format(value=_q(column))))
        pairs = tokens.select(F.col("index").alias(f"_index_{i}"), F.col("token").alias(t))
        frame = frame.join(pairs, frame[idx] == pairs[f"_index_{i}"], "left")
        frame = frame.withColumn(c.name, F.col(t)).drop(idx, t, f"_index_{i}")
    return frame.drop("_ki", "_ko")


def _entries(spark: SparkSession, vault: TokenVault, domain: str) -> DataFrame | None:
    """The vault's ``index, token`` at its latest version, on the engine (None: no vault yet)."""
    version = vault.version(domain)
    if version is None:
        return None
    uri = vault.uri(domain, "entries")
    reader = spark.read.format("delta").option("versionAsOf", version)
    return reader.load(uri).select("index", "token")


def _scrubbed(
    frame: DataFrame,
    columns: list[str],
    keys: DataFrame,
    entries: DataFrame | None,
    key: tuple[str, ...],
) -> DataFrame:
    """``frame`` with each identifier in ``columns`` replaced by its token, on the engine: each
    text that holds identifiers split around them and put back together with their tokens in
    order, then joined back to its row by ``key``.

    Every column's texts are rebuilt from ``frame`` as it came (scrubbing a column reads that
    column alone), and each identifier's token is found by its index in the vault: Sail 0.7
    does not cache, so each reuse of a query runs it again, and rebuilding column after column
    from the previous result ran the batch's transform 3^n times for n columns (9 for the
    reviews' two texts, plus two more for each lookup of the batch's distinct values); this way
    it runs n + 1 times."""
    from pyspark.sql import functions as F  # noqa: N812 - only on Spark

    result = frame
    for column in columns:
        text, scrubbed = _q(column), f"_scrubbed_{uuid.uuid4().hex[:8]}"
        found = frame.where(F.expr(f"{text} RLIKE {PATTERN}")).select(
            *key,
            F.col(column).alias("_text"),
            F.expr(f"posexplode(regexp_extract_all({text}, {PATTERN}, 0)) AS (_pos, _ident)"),
        )
        found = found.crossJoin(keys).withColumn("_idx", F.expr(INDEX_SQL.format(value="_ident")))
        found = found.drop("_ki", "_ko", "_ident")
        if entries is None:  # no vault: nothing was ever minted, no token to put in
            found = found.withColumn("_token", F.lit(None).cast("string"))
        else:  # two tokens for one value only if a mint bypassed the lock: the smallest wins
            found = (
                found.join(entries, found["_idx"] == entries["index"], "left")
                .groupBy(*key, "_text", "_pos")
                .agg(F.min("token").alias("_token"))
            )
        ordered = found.groupBy(*key).agg(
            F.max("_text").alias("_text"),  # the row's one text (the key is unique)
            F.expr("array_sort(collect_list(struct(_pos, _token)))").alias("_toks"),
        )
        # n identifiers split a text into n + 1 parts: part i and token i for each identifier,
        # then the last part. element_at, not [i]: Sail 0.7 reads a lambda variable in [] as
        # text.
        parts = f"split(_text, {PATTERN}, -1)"
        rebuilt = ordered.select(
            *key,
            F.expr(
                f"concat(aggregate(sequence(1, size(_toks)), '', (acc, i) -> concat(acc, "
                f"element_at({parts}, i), element_at(_toks, i)._token)), "
                f"element_at({parts}, size({parts})))"
            ).alias(scrubbed),
        )
        result = result.join(rebuilt, list(key), "left")
        result = result.withColumn(column, F.coalesce(F.col(scrubbed), F.col(column)))
        result = result.drop(scrubbed)
    return result
