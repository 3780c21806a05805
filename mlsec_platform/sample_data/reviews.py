"""The reviews table: scores and Portuguese comments that follow each order's delivery."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlsec_platform.sample_data.arrays import (
    day_floor,
    lognormal_seconds,
    sentiment_pick,
    stream_rng,
)
from mlsec_platform.sample_data.columns import contract_table, hex_ids, ints, pick, timestamps
from mlsec_platform.sample_data.vocab import (
    CONTACT_PREFIXES,
    DAY,
    HOUR,
    PHRASES_BAD,
    PHRASES_GOOD,
    PHRASES_MID,
    REVIEW_SCORES,
    TITLES_BAD,
    TITLES_GOOD,
    TITLES_MID,
)


def reviews_table(
    seed: int,
    order_ids: pa.Array,
    delivered_at: np.ndarray,
    estimated_at: np.ndarray,
    customers: pa.Table,
) -> pa.Table:
    """Review scores and Portuguese comments that follow each order's delivery (or its failure).

    ``delivered_at`` is -1 for an order that was never delivered; ``customers`` is the
    customers table, whose phone and e-mail leak into some comments.
    """
    rng = stream_rng(seed, "reviews")
    n = len(order_ids)
    delivered = delivered_at >= 0
    late = delivered & (delivered_at > estimated_at + DAY)
    group = np.where(~delivered, 0, np.where(late, 1, 2))  # failed, late, on time
    scores = np.array(list(REVIEW_SCORES))
    target = np.array(list(REVIEW_SCORES.values()))
    failed = np.array([0.12, 0.08, 0.10, 0.10, 0.60])  # 5, 4, 3, 2, 1
    late_p = np.array([0.27, 0.15, 0.15, 0.08, 0.35])
    share = np.bincount(group, minlength=3) / n
    on_time = np.clip(target - share[0] * failed - share[1] * late_p, 0.001, None)
    table = np.stack([failed, late_p, on_time / on_time.sum()])
    cum = np.cumsum(table / table.sum(axis=1, keepdims=True), axis=1)
    cum[:, -1] = 1.0
    drawn = (rng.random(n)[:, None] >= cum[group]).sum(axis=1)
    score = scores[drawn]
    has_review = rng.random(n) < 0.992
    p_message = np.array([0.0, 0.75, 0.65, 0.50, 0.30, 0.33])[score]
    has_message = rng.random(n) < p_message
    has_title = np.where(has_message, rng.random(n) < 0.25, rng.random(n) < 0.02)
    sentiment = np.where(score >= 4, 0, np.where(score == 3, 1, 2))
    title = sentiment_pick(rng, (TITLES_GOOD, TITLES_MID, TITLES_BAD), sentiment)
    phrases = (PHRASES_GOOD, PHRASES_MID, PHRASES_BAD)
    first = sentiment_pick(rng, phrases, sentiment)
    second = sentiment_pick(rng, phrases, sentiment)
    two = (rng.random(n) < 0.3) & ~pc.equal(first, second).to_numpy(zero_copy_only=False)
    message = pc.if_else(two, pc.binary_join_element_wise(first, second, ". "), first)
    # Free text leaks personal data now and then: a phone number or an e-mail address.
    contact_kind = rng.integers(0, len(CONTACT_PREFIXES), n)
    contact = pc.if_else(
        contact_kind % 2 == 0,
        customers["customer_phone"].combine_chunks(),
        customers["customer_email"].combine_chunks(),
    )
    prefix = pick(pa.array(CONTACT_PREFIXES), contact_kind)
    leak = has_message & (rng.random(n) < 0.02)
    leaked = pc.binary_join_element_wise(message, ".", prefix, contact, "")
    message = pc.if_else(leak, leaked, message)
    base = np.where(delivered, delivered_at, estimated_at)
    created = day_floor(base) + DAY
    answer = created + np.clip(lognormal_seconds(rng, n, 30 * HOUR, 0.9), HOUR, 60 * DAY)
    review_ids = hex_ids(rng, n)
    keep = np.flatnonzero(has_review)
    k = pa.array(keep)
    return contract_table(
        "olist_order_reviews",
        {
            "review_id": review_ids.take(k),
            "order_id": order_ids.take(k),
            "review_score": ints(score[keep]),
            "review_comment_title": pc.if_else(has_title, title, None).take(k),
            "review_comment_message": pc.if_else(has_message, message, None).take(k),
            "review_creation_date": timestamps(created[keep]),
            "review_answer_timestamp": timestamps(answer[keep]),
        },
    )
