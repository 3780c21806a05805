"""The Olist tables, built step by step from one seed.

Sellers, products, customers, orders, items, payments, the orders' timeline, reviews (drawn
in :mod:`.reviews`), geolocation and the category translation; each step draws from its own
random stream, so the same seed always gives the same tables.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from mlsec_platform.catalog.sources import FILE_SOURCES
from mlsec_platform.sample_data import pt_br
from mlsec_platform.sample_data.arrays import (
    day_floor,
    distance,
    group_positions,
    lognormal_seconds,
    pretty_cents,
    purchase_seconds,
    stream_rng,
)
from mlsec_platform.sample_data.columns import (
    contract_table,
    degrees,
    hex_ids,
    ints,
    money,
    pick,
    text,
    timestamps,
)
from mlsec_platform.sample_data.reviews import reviews_table
from mlsec_platform.sample_data.vocab import (
    CATEGORIES,
    DAY,
    HOUR,
    INSTALLMENT_SHARES,
    ITEMS_PER_ORDER,
    MIN_PRODUCTS,
    MIN_SELLERS,
    ORDER_STATUSES,
    ORDERS_PER_PERSON,
    PAYMENT_SHARES,
    PAYMENT_TYPES,
    PRICE_LEVEL,
    PRODUCTS_PER_ORDER,
    SELLERS_PER_ORDER,
)


class TableBuilder:
    """Builds the nine tables step by step; every step has its own random stream."""

    def __init__(self, seed: int, orders: int) -> None:
        self.seed = seed
        self.n = orders
        self.tables: dict[str, pa.Table] = {}

    def build(self) -> dict[str, pa.Table]:
        """The nine tables, in the order of the file sources."""
        self._sellers()
        self._products()
        self._people()
        self._orders()
        self._items()
        self._payments()
        self._timeline()
        self.tables["olist_order_reviews"] = reviews_table(
            self.seed,
            self.order_ids,
            self.delivered,
            self.estimated,
            self.tables["olist_customers"],
        )
        self._geolocation()
        self._translation()
        order = list(FILE_SOURCES)
        return {name: self.tables[name] for name in order}

    # -- catalog ------------------------------------------------------------------------------

    def _sellers(self) -> None:
        rng = stream_rng(self.seed, "sellers")
        s = max(MIN_SELLERS, round(self.n * SELLERS_PER_ORDER))
        self.seller_count = s
        state = pt_br.sample_states(rng, s, sellers=True)
        self.seller_city = pt_br.sample_cities(rng, state)
        zips = pt_br.zip_prefix_numbers(rng, self.seller_city)
        self.seller_zips = zips
        self.seller_popularity = rng.lognormal(0.0, 1.2, s)
        ids = hex_ids(rng, s)
        self.seller_ids = ids
        self.tables["olist_sellers"] = contract_table(
            "olist_sellers",
            {
                "seller_id": ids,
                "seller_zip_code_prefix": text(pt_br.format_zip_prefixes(zips)),
                "seller_city": pick(pa.array(pt_br.CITY_NAMES_OLIST), self.seller_city),
                "seller_state": pick(pa.array(pt_br.UFS), state),
            },
        )

    def _products(self) -> None:
        rng = stream_rng(self.seed, "products")
        p = max(MIN_PRODUCTS, round(self.n * PRODUCTS_PER_ORDER))
        self.product_count = p
        weights = np.array([c[2] for c in CATEGORIES], dtype=float)
        category = rng.choice(len(CATEGORIES), size=p, p=weights / weights.sum())
        has_category = rng.random(p) >= 0.0185  # Olist: 610 products without a category
        seller = rng.choice(
            self.seller_count, size=p, p=self.seller_popularity / self.seller_popularity.sum()
        )
        covered = min(p, self.seller_count)  # every seller offers at least one product
        seller[rng.permutation(p)[:covered]] = rng.permutation(self.seller_count)[:covered]
        level = np.array([PRICE_LEVEL.get(c[0], 0.0) for c in CATEGORIES])[category]
        reais = np.minimum(rng.lognormal(np.log(74.0) + level, 0.85), 6735.0)
        self.product_cents = pretty_cents(rng, reais)
        self.product_seller = seller
        weight_g = np.clip(np.round(rng.lognormal(np.log(700), 1.3, p)), 0, 40425).astype(int)
        self.product_weight_kg = weight_g / 1000.0
        self.product_popularity = rng.lognormal(0.0, 1.4, p)
        name_len = np.clip(np.round(rng.normal(48, 10, p)), 5, 76)
        desc_len = np.clip(np.round(rng.lognormal(np.log(600), 0.8, p)), 4, 3992)
        photos = np.clip(rng.geometric(0.55, p), 1, 20)
        length = np.clip(np.round(rng.lognormal(np.log(25), 0.45, p)), 7, 105)
        height = np.clip(np.round(rng.lognormal(np.log(13), 0.6, p)), 2, 105)
        width = np.clip(np.round(rng.lognormal(np.log(20), 0.4, p)), 6, 118)
        self.product_ids = hex_ids(rng, p)
        self.tables["olist_products"] = contract_table(
            "olist_products",
            {
                "product_id": self.product_ids,
                "product_category_name": pick(
                    pa.array([c[0] for c in CATEGORIES]), category, has_category
                ),
                "product_name_lenght": ints(name_len, has_category),
                "product_description_lenght": ints(desc_len, has_category),
                "product_photos_qty": ints(photos, has_category),
                "product_weight_g": ints(weight_g),
                "product_length_cm": ints(length),
                "product_height_cm": ints(height),
                "product_width_cm": ints(width),
            },
        )

    # -- customers and orders ----------------------------------------------------------------

    def _people(self) -> None:
        """The people behind the orders: a few buy more than once."""
        rng = stream_rng(self.seed, "people")
        per_person = np.array(ORDERS_PER_PERSON) / sum(ORDERS_PER_PERSON)
        mean = float(np.dot(per_person, np.arange(1, len(per_person) + 1)))
        draw = rng.choice(len(per_person), size=int(self.n / mean * 1.05) + 16, p=per_person) + 1
        total = np.cumsum(draw)
        while total[-1] < self.n:  # practically never: the draw above has a 5 % margin
            draw = np.concatenate([draw, rng.choice(len(per_person), size=16, p=per_person) + 1])
            total = np.cumsum(draw)
        people = int(np.searchsorted(total, self.n)) + 1  # first prefix reaching n orders
        counts = draw[:people].copy()
        counts[-1] -= int(total[people - 1]) - self.n
        self.person_of_order = rng.permutation(np.repeat(np.arange(people), counts))
        state = pt_br.sample_states(rng, people)
        city = pt_br.sample_cities(rng, state)
        self.person_state = state
        self.person_city = city
        self.person_zips = pt_br.zip_prefix_numbers(rng, city)
        names = pt_br.person_names(rng, people)
        # Text goes to arrow right away: numpy's fixed-width unicode is 4 bytes a character.
        self.person_text = {
            "customer_name": text(names.full),
            "customer_cpf": text(pt_br.cpf_numbers(rng, people)),
            "customer_email": text(pt_br.emails(rng, names)),
            "customer_phone": text(pt_br.phones(rng, state)),
            "customer_street_address": text(pt_br.street_addresses(rng, people)),
        }
        self.person_ids = hex_ids(rng, people)

    def _orders(self) -> None:
        rng = stream_rng(self.seed, "orders")
        n = self.n
        self.purchase = np.sort(purchase_seconds(rng, n))
        statuses = [s for s, _ in ORDER_STATUSES]
        shares = np.array([p for _, p in ORDER_STATUSES])
        self.status = rng.choice(len(statuses), size=n, p=shares / shares.sum())
        self.status_names = statuses
        self.order_ids = hex_ids(rng, n)
        self.customer_ids = hex_ids(rng, n)
        self.order_city = self.person_city[self.person_of_order]
        person = pa.array(self.person_of_order)
        zips = pt_br.format_zip_prefixes(self.person_zips)
        self.tables["olist_customers"] = contract_table(
            "olist_customers",
            {
                "customer_id": self.customer_ids,
                "customer_unique_id": self.person_ids.take(person),
                "customer_zip_code_prefix": text(zips).take(person),
                "customer_city": pick(pa.array(pt_br.CITY_NAMES_OLIST), self.order_city),
                "customer_state": pick(pa.array(pt_br.UFS), self.person_state).take(person),
                **{column: values.take(person) for column, values in self.person_text.items()},
            },
        )
        del self.person_text

    def _items(self) -> None:
        rng = stream_rng(self.seed, "items")
        n = self.n
        per_order = np.array(ITEMS_PER_ORDER) / sum(ITEMS_PER_ORDER)
        counts = rng.choice(len(per_order), size=n, p=per_order) + 1
        order, position, starts = group_positions(counts)
        repeat = (position > 0) & (rng.random(len(order)) < 0.6)  # same product again
        fresh = np.flatnonzero(~repeat)
        product = np.zeros(len(order), dtype=np.int64)
        pop = self.product_popularity / self.product_popularity.sum()
        drawn = rng.choice(self.product_count, size=len(fresh), p=pop)
        if len(fresh) >= self.product_count:  # every product sells at least once
            slots = rng.choice(len(fresh), size=self.product_count, replace=False)
            drawn[slots] = rng.permutation(self.product_count)
        else:
            drawn = rng.permutation(self.product_count)[: len(fresh)]
        product[fresh] = drawn
        product[repeat] = product[starts[order[repeat]]]
        seller = self.product_seller[product]
        price = self.product_cents[product]
        dist = distance(self.seller_city[seller], self.order_city[order])
        noise = rng.lognormal(np.log(11.0), 0.35, n)[order]  # one rate per order
        weight = np.minimum(self.product_weight_kg[product], 30.0)
        freight = noise * (1 + dist / 12.0) * (1 + 0.06 * weight)
        freight = np.where(rng.random(len(order)) < 0.003, 0.0, freight)
        freight_cents = np.minimum(np.round(freight * 100), 40_000).astype(np.int64)
        self.item_order = order
        self.item_position = position
        self.item_counts = counts
        self.item_starts = starts
        self.item_seller = seller
        self.item_product = product
        self.item_price = price
        self.item_freight = freight_cents
        self.first_seller_city = self.seller_city[seller[starts]]

    def _payments(self) -> None:
        rng = stream_rng(self.seed, "payments")
        n = self.n
        total = np.add.reduceat(self.item_price + self.item_freight, self.item_starts)
        self.order_total = total
        main = rng.choice(len(PAYMENT_TYPES), size=n, p=PAYMENT_SHARES)
        self.main_payment = main
        vouchers = np.minimum(rng.geometric(0.55, n), 12)
        mixed = (main == 0) & (rng.random(n) < 0.015)  # card plus one or two vouchers
        extra = 1 + (rng.random(n) < 0.25)
        rows = np.where(main == 2, vouchers, np.where(mixed, extra + 1, 1))
        rows = np.minimum(rows, total)  # never more payments than cents
        order, position, starts = group_positions(rows)
        last = position == rows[order] - 1
        # Type per row: vouchers for voucher orders; for mixed ones the card comes first.
        kind = main[order].copy()
        kind[mixed[order] & (position > 0)] = 2
        weight = rng.exponential(1.0, len(order)) + 0.3
        weight[mixed[order] & (position == 0)] *= 4.0
        cum = np.cumsum(weight)
        cum_in_group = cum - np.concatenate([[0.0], cum])[starts][order]
        group_sum = cum_in_group[np.flatnonzero(last)][order]
        bound = np.floor(total[order] * (cum_in_group / group_sum)).astype(np.int64)
        bound[last] = total[order[last]]
        previous = np.concatenate([[0], bound[:-1]])
        previous[position == 0] = 0
        value = bound - previous
        reais = total / 100.0
        # Installments: half pay at once; the others spread, more for dearer orders.
        max_installments = np.clip(np.ceil(reais / 25.0), 1, 10).astype(np.int64)
        spread = rng.choice(10, size=n, p=INSTALLMENT_SHARES) + 1
        installments = np.where(rng.random(n) < 0.45, 1, np.minimum(spread, max_installments))
        installments = installments[order]
        installments = np.where(kind == 0, installments, 1)
        self.tables["olist_order_payments"] = contract_table(
            "olist_order_payments",
            {
                "order_id": self.order_ids.take(pa.array(order)),
                "payment_sequential": ints(position + 1),
                "payment_type": pick(pa.array(PAYMENT_TYPES), kind),
                "payment_installments": ints(installments),
                "payment_value": money(value),
            },
        )

    def _timeline(self) -> None:
        """Lifecycle timestamps consistent with each order's final status."""
        rng = stream_rng(self.seed, "timeline")
        n = self.n
        name = np.array(self.status_names)[self.status]
        boleto = self.main_payment == 1
        quick = np.where(
            rng.random(n) < 0.75,
            60 + np.round(rng.exponential(12 * 60, n)).astype(np.int64),
            lognormal_seconds(rng, n, 6 * HOUR, 0.8),
        )
        approve_delay = np.where(boleto, lognormal_seconds(rng, n, 30 * HOUR, 0.4), quick)
        approve_delay = np.clip(approve_delay, 60, 20 * DAY)
        carrier_delay = np.clip(lognormal_seconds(rng, n, 2.2 * DAY, 0.6), HOUR, 30 * DAY)
        dist = distance(self.first_seller_city, self.order_city)
        transit_days = 3.5 + 0.6 * dist
        transit = np.round(transit_days * DAY * rng.lognormal(0.0, 0.45, n)).astype(np.int64)
        transit = np.clip(transit, 12 * HOUR, 120 * DAY)
        slack = rng.integers(1, 10, n)
        estimated_days = np.ceil(3.0 + transit_days * 1.35).astype(np.int64) + slack
        purchase = self.purchase
        approved = purchase + approve_delay
        carrier = approved + carrier_delay
        delivered = carrier + transit
        has_approved = name != "created"
        has_approved &= ~((name == "canceled") & (rng.random(n) < 0.15))
        has_carrier = np.isin(name, ["shipped", "delivered"])
        has_delivered = name == "delivered"
        self.approved = np.where(has_approved, approved, -1)
        self.delivered = np.where(has_delivered, delivered, -1)
        estimated = day_floor(purchase) + estimated_days * DAY
        self.estimated = estimated
        self.tables["olist_orders"] = contract_table(
            "olist_orders",
            {
                "order_id": self.order_ids,
                "customer_id": self.customer_ids,
                "order_status": pick(pa.array(self.status_names), self.status),
                "order_purchase_timestamp": timestamps(purchase),
                "order_approved_at": timestamps(approved, has_approved),
                "order_delivered_carrier_date": timestamps(carrier, has_carrier),
                "order_delivered_customer_date": timestamps(delivered, has_delivered),
                "order_estimated_delivery_date": timestamps(estimated),
            },
        )
        limit_days = rng.integers(5, 9, n)
        base = np.where(has_approved, approved, purchase)
        shipping_limit = (base + limit_days * DAY)[self.item_order]
        order = pa.array(self.item_order)
        self.tables["olist_order_items"] = contract_table(
            "olist_order_items",
            {
                "order_id": self.order_ids.take(order),
                "order_item_id": ints(self.item_position + 1),
                "product_id": self.product_ids.take(pa.array(self.item_product)),
                "seller_id": self.seller_ids.take(pa.array(self.item_seller)),
                "shipping_limit_date": timestamps(shipping_limit),
                "price": money(self.item_price),
                "freight_value": money(self.item_freight),
            },
        )

    # -- geography, translation --------------------------------------------------------------

    def _geolocation(self) -> None:
        rng = stream_rng(self.seed, "geolocation")
        zips = np.unique(np.concatenate([self.person_zips, self.seller_zips]))
        city = pt_br.city_of_zip_prefix(zips)
        lat, lng = pt_br.coordinates(rng, city, spread=0.06)
        rows = rng.choice(3, size=len(zips), p=[0.40, 0.35, 0.25]) + 1
        group, _, _ = group_positions(rows)
        box = pt_br.STATE_BBOXES[pt_br.CITY_STATE[city[group]]]
        lat = np.clip(lat[group] + rng.normal(0, 0.004, len(group)), box[:, 0], box[:, 1])
        lng = np.clip(lng[group] + rng.normal(0, 0.004, len(group)), box[:, 2], box[:, 3])
        self.tables["olist_geolocation"] = contract_table(
            "olist_geolocation",
            {
                "geolocation_zip_code_prefix": text(pt_br.format_zip_prefixes(zips[group])),
                "geolocation_lat": degrees(lat),
                "geolocation_lng": degrees(lng),
                "geolocation_city": pick(pa.array(pt_br.CITY_NAMES_OLIST), city[group]),
                "geolocation_state": pick(pa.array(pt_br.UFS), pt_br.CITY_STATE[city[group]]),
            },
        )

    def _translation(self) -> None:
        self.tables["product_category_name_translation"] = contract_table(
            "product_category_name_translation",
            {
                "product_category_name": pa.array([c[0] for c in CATEGORIES]),
                "product_category_name_english": pa.array([c[1] for c in CATEGORIES]),
            },
        )
