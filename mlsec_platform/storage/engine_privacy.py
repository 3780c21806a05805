"""De-identification of a Silver batch on the Spark engine, as its catalog entry tags it.

The same plan as on DuckDB (``privacy/deidentify.py``): generalised columns computed, tokenized
columns replaced by their tokens, identifiers in scrubbed text replaced by theirs, clear columns
dropped. Here every step is a query on the engine; the batch never comes to this process.

Tokens: per domain, the engine computes the batch's distinct values and their vault index
(HMAC-SHA256 under the index key, in SQL: two SHA-256 passes over the key's padded forms),
joins them with the vault's ``entries`` table (read on the engine from the tokens bucket), and
only values the vault has never seen come here, to be minted (sealed here, appended to the vault
in one commit, under the domain's lock after a re-check on the engine). Then the tokens are
joined back on the engine. So this process holds, per batch, the NEW distinct values of a domain
and nothing else of the table: after the first load, a batch of new customers brings only its
new people's identifiers. Chosen over a UDF with a per-batch key: tokens are random, minted once
and looked up ever after, so a value's token lives in the vault and no function of the value
alone can produce it on the engine.

The index key reaches the engine as a one-row table of the batch's query (never in SQL text,
which error messages quote); the engine is the pipeline identity's own loopback process.

Scrubbed text: identifiers are found on the engine with the same pattern (``privacy/
scrubbing.py``), tokenized with their domain, and each text is rebuilt on the engine from the
pieces between its identifiers and their tokens in order.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import pyarrow as pa

from mlsec_platform.privacy.deidentify import PrivacyPlan
from mlsec_platform.privacy.generalisation import SPARK_EXPRESSIONS
from mlsec_platform.privacy.scrubbing import IDENTIFIERS
from mlsec_platform.storage.token_vault import TokenVault

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
        values = [frame.select(F.col(c.from_column).alias("value")) for c in tokenized]
        values += [
            frame.select(
                F.explode(F.expr(f"regexp_extract_all({_q(c.name)}, {PATTERN}, 0)"))
            ).withColumnRenamed("col", "value")
            for c in scrubbed
        ]
        union = values[0]
        for more in values[1:]:
            union = union.unionByName(more)
        tokens = tokens_on_engine(spark, vault, domain, union)
        for i, c in enumerate(tokenized):
            v, t = f"_value_{i}", f"_token_{i}"
            pairs = tokens.select(F.col("value").alias(v), F.col("token").alias(t))
            frame = frame.join(pairs, frame[c.from_column] == pairs[v], "left")
            frame = frame.withColumn(c.name, F.col(t)).drop(v, t)
        for c in scrubbed:
            frame = _scrubbed(frame, c.name, tokens, key)
    return frame.drop(*plan.clear_columns)


def tokens_on_engine(
    spark: SparkSession, vault: TokenVault, domain: str, values: DataFrame
) -> DataFrame:
    """``value, token`` for each distinct non-null value of ``values`` (column ``value``):
    new values minted first (only they come to this process)."""
    from pyspark.sql import functions as F  # noqa: N812 - only on Spark

    prefix = domain.encode() + b"\0"
    padded = vault.index_key().key.ljust(64, b"\0")
    keys = pa.table(
        {
            "_ki": pa.array([bytes(b ^ 0x36 for b in padded) + prefix], pa.binary()),
            "_ko": pa.array([bytes(b ^ 0x5C for b in padded)], pa.binary()),
        }
    )
    key_frame = spark.createDataFrame(keys)

    def indexed(frame: DataFrame) -> DataFrame:
        return frame.crossJoin(key_frame).select(
            "value", F.expr(INDEX_SQL.format(value="value")).alias("idx")
        )

    distinct = indexed(values.where(F.col("value").isNotNull()).distinct())

    def missing(candidates: DataFrame) -> DataFrame:
        entries = _entries(spark, vault, domain)
        if entries is None:
            return candidates.select("value")
        return candidates.join(entries, candidates["idx"] == entries["index"], "left_anti").select(
            "value"
        )

    new = missing(distinct).toArrow().column("value").combine_chunks()
    if len(new):

        def still_missing(found: pa.Array) -> pa.Array:
            # The same anti-join again, against the vault as it is now (under the lock): the
            # engine recomputes the batch's values rather than receiving ``found`` back.
            return missing(distinct).toArrow().column("value").combine_chunks()

        vault.mint_values(domain, new, still_missing)
    entries = _entries(spark, vault, domain)
    if entries is None:  # nothing in the batch and nothing in the vault
        return distinct.select("value", F.lit(None).cast("string").alias("token"))
    # Two tokens for one value only if a mint bypassed the lock: the smallest wins, as on DuckDB.
    return (
        distinct.join(entries, distinct["idx"] == entries["index"])
        .groupBy("value")
        .agg(F.min("token").alias("token"))
    )


def _entries(spark: SparkSession, vault: TokenVault, domain: str) -> DataFrame | None:
    """The vault's ``index, token`` at its latest version, on the engine (None: no vault yet)."""
    version = vault.version(domain)
    if version is None:
        return None
    uri = vault.uri(domain, "entries")
    reader = spark.read.format("delta").option("versionAsOf", version)
    return reader.load(uri).select("index", "token")


def _scrubbed(frame: DataFrame, column: str, tokens: DataFrame, key: tuple[str, ...]) -> DataFrame:
    """``frame`` with each identifier in ``column`` replaced by its token, on the engine: the
    text split around its identifiers, put back together with their tokens in order."""
    from pyspark.sql import functions as F  # noqa: N812 - only on Spark

    tag = uuid.uuid4().hex[:8]
    text, scrubbed = _q(column), f"_scrubbed_{tag}"
    hits = frame.where(F.expr(f"{text} RLIKE {PATTERN}")).select(*key, column)
    found = hits.select(
        *key, F.expr(f"posexplode(regexp_extract_all({text}, {PATTERN}, 0)) AS (pos, ident)")
    )
    found = found.join(tokens, found["ident"] == tokens["value"], "left")
    ordered = found.groupBy(*key).agg(
        F.expr("array_sort(collect_list(struct(pos, token)))").alias("toks")
    )
    # n identifiers split a text into n + 1 parts: part i and token i for each identifier,
    # then the last part. element_at, not [i]: Sail 0.7 reads a lambda variable in [] as text.
    parts = f"split({text}, {PATTERN}, -1)"
    rebuilt = hits.join(ordered, list(key)).select(
        *key,
        F.expr(
            f"concat(aggregate(sequence(1, size(toks)), '', (acc, i) -> concat(acc, "
            f"element_at({parts}, i), element_at(toks, i).token)), "
            f"element_at({parts}, size({parts})))"
        ).alias(scrubbed),
    )
    frame = frame.join(rebuilt, list(key), "left")
    return frame.withColumn(column, F.coalesce(F.col(scrubbed), F.col(column))).drop(scrubbed)
