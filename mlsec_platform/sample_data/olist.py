"""Deterministic generator of Olist-shaped Brazilian e-commerce data with pt_BR personal data.

The platform's demo source and the benchmarks' workload: nine tables shaped exactly like the
file-source contracts in :mod:`mlsec_platform.catalog.sources` (every value as text, ``None``
for a missing value) plus the ``order_status`` event stream derived from them.

Determinism
    Every random decision comes from a ``numpy.random.Generator`` seeded with ``(seed, stream)``
    where ``stream`` is a fixed name per concern ("orders", "items", "payments", ...). The same
    ``seed`` and ``orders`` therefore give identical tables (and byte-identical CSV files) on
    every run with the same numpy version; another seed gives other data. Ids are 32-hex
    strings drawn from those generators; event ids are UUIDv5 over ``(seed, order_id,
    event_type)``, so re-publishing a data set reproduces its event ids.

What is realistic (roughly the public Olist data, 2016-09 .. 2018-10)
    * monthly order volume follows Olist's growth (a trickle in late 2016, the Black Friday
      peak in November 2017), with Olist's hour-of-day and weekday profile;
    * ~96.5 % delivered; the other statuses have consistent lifecycle timestamps (a delivered
      order has purchase < approved < carrier < customer delivery; canceled orders have no
      delivery dates; boleto payments take a day or two to approve);
    * ~97 % of people buy once (``customer_unique_id`` repeats, ``customer_id`` is per order);
    * customers and sellers by state as in Olist (SP ~42 % of customers, ~60 % of sellers);
    * 1 item for ~90 % of orders, lognormal prices (median ~75 BRL), freight and delivery time
      growing with the seller-to-customer distance and the product weight;
    * Olist's 71 Portuguese categories with their English translations (typos included);
    * payment mix (credit card with installments, boleto, vouchers, debit card) whose values sum
      to the order's price plus freight to the cent; review scores and Portuguese comments that
      depend on late or failed deliveries; some comments carry the customer's phone or e-mail,
      as free text does in real life.

Everything is vectorized with numpy/pyarrow: 100k orders take about a second.
"""

from __future__ import annotations

import hashlib
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from mlsec_platform.catalog.sources import FILE_SOURCES
from mlsec_platform.sample_data import pt_br

# --------------------------------------------------------------------------------------------
# Reference data

#: Olist's categories: Portuguese name, English name (as in Olist's translation file, typos
#: included) and number of products in the public data set (the sampling weight).
CATEGORIES: tuple[tuple[str, str, int], ...] = (
    ("cama_mesa_banho", "bed_bath_table", 3029),
    ("esporte_lazer", "sports_leisure", 2867),
    ("moveis_decoracao", "furniture_decor", 2657),
    ("beleza_saude", "health_beauty", 2444),
    ("utilidades_domesticas", "housewares", 2335),
    ("automotivo", "auto", 1900),
    ("informatica_acessorios", "computers_accessories", 1639),
    ("brinquedos", "toys", 1411),
    ("relogios_presentes", "watches_gifts", 1329),
    ("telefonia", "telephony", 1134),
    ("bebes", "baby", 919),
    ("perfumaria", "perfumery", 868),
    ("papelaria", "stationery", 849),
    ("fashion_bolsas_e_acessorios", "fashion_bags_accessories", 849),
    ("cool_stuff", "cool_stuff", 789),
    ("ferramentas_jardim", "garden_tools", 753),
    ("pet_shop", "pet_shop", 719),
    ("eletronicos", "electronics", 517),
    ("construcao_ferramentas_construcao", "construction_tools_construction", 400),
    ("eletrodomesticos", "home_appliances", 370),
    ("malas_acessorios", "luggage_accessories", 349),
    ("consoles_games", "consoles_games", 317),
    ("moveis_escritorio", "office_furniture", 309),
    ("instrumentos_musicais", "musical_instruments", 289),
    ("eletroportateis", "small_appliances", 231),
    ("casa_construcao", "home_construction", 225),
    ("livros_interesse_geral", "books_general_interest", 216),
    ("fashion_calcados", "fashion_shoes", 173),
    ("moveis_sala", "furniture_living_room", 156),
    ("climatizacao", "air_conditioning", 124),
    ("livros_tecnicos", "books_technical", 123),
    ("telefonia_fixa", "fixed_telephony", 116),
    ("casa_conforto", "home_confort", 111),
    ("market_place", "market_place", 104),
    ("alimentos_bebidas", "food_drink", 104),
    ("fashion_roupa_masculina", "fashion_male_clothing", 95),
    (
        "moveis_cozinha_area_de_servico_jantar_e_jardim",
        "kitchen_dining_laundry_garden_furniture",
        94,
    ),
    ("sinalizacao_e_seguranca", "signaling_and_security", 93),
    ("construcao_ferramentas_seguranca", "construction_tools_safety", 91),
    ("eletrodomesticos_2", "home_appliances_2", 90),
    ("construcao_ferramentas_jardim", "costruction_tools_garden", 88),
    ("alimentos", "food", 82),
    ("bebidas", "drinks", 81),
    ("construcao_ferramentas_iluminacao", "construction_tools_lights", 78),
    ("agro_industria_e_comercio", "agro_industry_and_commerce", 74),
    ("industria_comercio_e_negocios", "industry_commerce_and_business", 68),
    ("artigos_de_natal", "christmas_supplies", 65),
    ("audio", "audio", 58),
    ("artes", "art", 55),
    ("fashion_underwear_e_moda_praia", "fashion_underwear_beach", 53),
    ("dvds_blu_ray", "dvds_blu_ray", 48),
    ("moveis_quarto", "furniture_bedroom", 45),
    ("construcao_ferramentas_ferramentas", "costruction_tools_tools", 39),
    ("portateis_casa_forno_e_cafe", "small_appliances_home_oven_and_coffee", 31),
    ("livros_importados", "books_imported", 31),
    ("pcs", "computers", 30),
    ("cine_foto", "cine_photo", 28),
    ("musica", "music", 27),
    ("fashion_roupa_feminina", "fashio_female_clothing", 27),
    ("artigos_de_festas", "party_supplies", 26),
    ("artes_e_artesanato", "arts_and_craftmanship", 19),
    ("fashion_esporte", "fashion_sport", 19),
    ("flores", "flowers", 14),
    ("fraldas_higiene", "diapers_and_hygiene", 12),
    ("la_cuisine", "la_cuisine", 10),
    ("tablets_impressao_imagem", "tablets_printing_image", 9),
    ("casa_conforto_2", "home_comfort_2", 5),
    ("fashion_roupa_infanto_juvenil", "fashion_childrens_clothes", 5),
    ("cds_dvds_musicais", "cds_dvds_musicals", 1),
    ("seguros_e_servicos", "security_and_services", 2),
    ("moveis_colchao_e_estofado", "furniture_mattress_and_upholstery", 10),
)

#: Log-price offsets of categories that are clearly cheaper or dearer than the median.
_PRICE_LEVEL: dict[str, float] = {
    "pcs": 1.9, "eletrodomesticos_2": 1.3, "portateis_casa_forno_e_cafe": 1.0,
    "agro_industria_e_comercio": 0.9, "instrumentos_musicais": 0.8, "moveis_escritorio": 0.7,
    "climatizacao": 0.6, "relogios_presentes": 0.6, "eletroportateis": 0.6, "cine_foto": 0.3,
    "telefonia_fixa": 0.4, "construcao_ferramentas_seguranca": 0.4, "moveis_quarto": 0.3,
    "moveis_colchao_e_estofado": 0.5, "eletronicos": -0.3, "telefonia": -0.3,
    "papelaria": -0.2, "fashion_bolsas_e_acessorios": -0.2, "livros_interesse_geral": -0.4,
    "livros_tecnicos": -0.1, "cds_dvds_musicais": -0.6, "dvds_blu_ray": -0.4,
    "alimentos": -0.3, "bebidas": -0.3, "flores": -0.4, "casa_conforto_2": -0.6,
    "artigos_de_festas": -0.5, "fashion_underwear_e_moda_praia": -0.3,
}  # fmt: skip

#: Final order status and its share (Olist: 97 % delivered; a little more churn here).
ORDER_STATUSES: tuple[tuple[str, float], ...] = (
    ("delivered", 0.9650), ("shipped", 0.0140), ("canceled", 0.0065),
    ("unavailable", 0.0062), ("invoiced", 0.0035), ("processing", 0.0034),
    ("created", 0.0008), ("approved", 0.0006),
)  # fmt: skip

#: Orders per month in the public data set: the shape of the purchase-time distribution.
MONTHLY_ORDERS: tuple[tuple[int, int, int], ...] = (
    (2016, 9, 4), (2016, 10, 324), (2016, 11, 0), (2016, 12, 1),
    (2017, 1, 800), (2017, 2, 1780), (2017, 3, 2682), (2017, 4, 2404), (2017, 5, 3700),
    (2017, 6, 3245), (2017, 7, 4026), (2017, 8, 4331), (2017, 9, 4285), (2017, 10, 4631),
    (2017, 11, 7544), (2017, 12, 5673), (2018, 1, 7269), (2018, 2, 6728), (2018, 3, 7211),
    (2018, 4, 6939), (2018, 5, 6873), (2018, 6, 6167), (2018, 7, 6292), (2018, 8, 6512),
    (2018, 9, 16), (2018, 10, 4),
)  # fmt: skip
FIRST_PURCHASE_DAY = np.datetime64("2016-09-04")
LAST_PURCHASE_DAY = np.datetime64("2018-10-17")
_BLACK_FRIDAY = np.datetime64("2017-11-24")

_HOURLY = np.array([
    2394, 1170, 510, 272, 206, 188, 502, 1231, 2967, 4785, 6177, 6578,
    5995, 6518, 6569, 6454, 6675, 6150, 5769, 5982, 6193, 6217, 5816, 4123,
], dtype=np.float64)  # fmt: skip
_WEEKDAY = np.array([1.15, 1.15, 1.10, 1.05, 1.00, 0.75, 0.80])  # Monday .. Sunday

ORDERS_PER_PERSON: tuple[float, ...] = (0.969, 0.0277, 0.0024, 0.0006, 0.0002, 0.0001)
ITEMS_PER_ORDER: tuple[float, ...] = (0.900, 0.075, 0.015, 0.006, 0.0025, 0.0015)
PRODUCTS_PER_ORDER = 0.3295  # Olist: 32,951 products for 99,441 orders
SELLERS_PER_ORDER = 0.0311  # Olist: 3,095 sellers
MIN_PRODUCTS = 100
MIN_SELLERS = 10

PAYMENT_TYPES: tuple[str, ...] = ("credit_card", "boleto", "voucher", "debit_card")
#: Share of orders by their main payment type; ~1.5 % of card orders also use vouchers, so
#: rows end up ~74 % card, ~19 % boleto, ~5.5 % voucher, ~1.5 % debit card as in Olist.
_PAYMENT_P = (0.767, 0.195, 0.023, 0.015)

#: Installments of a card payment that is spread (Olist has peaks at 2-4, 8 and 10).
_INSTALLMENTS_P = np.array([0.05, 0.22, 0.19, 0.13, 0.09, 0.07, 0.03, 0.07, 0.01, 0.14])

REVIEW_SCORES: dict[int, float] = {5: 0.578, 4: 0.193, 3: 0.082, 2: 0.032, 1: 0.115}

_TITLES_GOOD = (
    "Recomendo", "Ótimo", "Excelente", "Muito bom", "Super recomendo", "Adorei", "Perfeito",
    "Chegou rápido", "Bom produto", "Nota 10",
)  # fmt: skip
_TITLES_MID = ("Razoável", "Poderia ser melhor", "Ok", "Mais ou menos", "Atrasou um pouco")
_TITLES_BAD = (
    "Não recebi", "Péssimo", "Decepcionado", "Não recomendo", "Produto errado",
    "Veio com defeito", "Horrível",
)  # fmt: skip
_PHRASES_GOOD = (
    "Produto excelente", "Chegou antes do prazo", "Recomendo a loja", "Muito bem embalado",
    "Produto de ótima qualidade", "Entrega rápida", "Superou minhas expectativas",
    "Tudo certo com a compra", "Produto conforme o anúncio", "Comprarei novamente",
    "Gostei muito, minha filha adorou", "Ótimo custo-benefício", "Vendedor atencioso",
    "Chegou tudo certinho, obrigado", 'Veio escrito "frágil" na caixa e chegou intacto',
)  # fmt: skip
_PHRASES_MID = (
    "Produto bom, mas a entrega atrasou", "O produto é bom, porém a cor é diferente da foto",
    "Chegou no prazo mas a embalagem estava amassada", "Esperava mais pelo preço",
    "Atende, mas o acabamento poderia ser melhor", "Demorou um pouco para chegar",
)  # fmt: skip
_PHRASES_BAD = (
    "Não recebi o produto", "Produto veio com defeito", "Até agora nada", "Veio o produto errado",
    "Comprei dois e recebi apenas um", "Ainda não recebi e o prazo já passou",
    "Péssimo atendimento, ninguém responde", "A qualidade é muito ruim",
    "Quero meu dinheiro de volta", "Produto diferente do anunciado",
    'Veio "usado", com marcas de uso', "Entrega muito atrasada, não recomendo",
)  # fmt: skip
_CONTACT_PREFIXES = (
    " Meu telefone é ", " Entrem em contato comigo: ", " Favor responder no e-mail ",
    " Contato: ",
)  # fmt: skip

EVENT_TYPES: tuple[str, ...] = (
    "order_created", "order_approved", "order_shipped", "order_delivered", "order_canceled",
)  # fmt: skip
_EVENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_OID, "mlsec_platform.sources.olist.order_status")
_EVENT_CHUNK = 65_536

DAY = 86_400
HOUR = 3_600

# --------------------------------------------------------------------------------------------
# Public API


@dataclass(frozen=True)
class OlistDataset:
    """A generated data set: one pyarrow table per file source, shaped by its contract."""

    seed: int
    orders: int
    tables: dict[str, pa.Table]


def generate(seed: int = 42, orders: int = 100_000) -> OlistDataset:
    """Generate ``orders`` orders (and everything around them) from ``seed``.

    Every table's schema equals ``FILE_SOURCES[name].raw_schema()``: all columns are text,
    ``None`` marks a missing value. The same arguments always give the same tables.
    """
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ValueError("seed must be a non-negative integer")
    if not isinstance(orders, int | np.integer) or isinstance(orders, bool) or orders < 1:
        raise ValueError("orders must be a positive integer")
    return OlistDataset(int(seed), int(orders), _Builder(int(seed), int(orders)).build())


def write_csv(dataset: OlistDataset, folder: Path) -> dict[str, Path]:
    """Write one UTF-8 CSV per table, ``<source>.csv``, and return their paths by source.

    The header line is exactly the contract's column names; values are RFC 4180 quoted
    (text is always quoted, embedded quotes doubled) and a missing value is an empty field.
    The files are byte-identical for the same data set.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    paths: dict[str, Path] = {}
    for name, table in dataset.tables.items():
        path = folder / f"{name}.csv"
        with path.open("wb") as handle:
            handle.write((",".join(table.column_names) + "\n").encode("utf-8"))
            pacsv.write_csv(table, handle, write_options=options)
        paths[name] = path
    return paths


def read_csv(path: Path, source: str) -> pa.Table:
    """Read a CSV written by :func:`write_csv` back into the contract's all-text schema."""
    schema = FILE_SOURCES[source].raw_schema()
    convert = pacsv.ConvertOptions(
        column_types={f.name: pa.string() for f in schema},
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    table = pacsv.read_csv(Path(path), convert_options=convert)
    return table.select(schema.names).cast(schema)


def order_status_events(dataset: OlistDataset) -> Iterator[dict]:
    """Yield the lifecycle events of every order, in time order (ties: order row, then stage).

    Each event is a dict with exactly the fields of ``EVENT_DOMAINS["order_status"]``:
    ``event_type`` is one of ``order_created``, ``order_approved``, ``order_shipped``,
    ``order_delivered``, ``order_canceled``; ``status`` is the order's status after the event
    (replaying an order's events ends in its ``order_status``: the approval of an order that
    stayed ``invoiced``/``processing`` carries that status, a cancellation carries ``canceled``
    or ``unavailable``); ``occurred_at`` is ISO 8601 UTC; ``seller_id`` is the first item's
    seller for shipped/delivered events, else ``None``; ``event_id`` is a UUIDv5 of (seed,
    order_id, event_type), stable across runs.
    """
    plan = _EventPlan.of(dataset)
    order_ids = plan.order_ids
    customer_ids = plan.customer_ids
    sellers = plan.first_sellers
    statuses = plan.status_names
    prefix = hashlib.sha1(  # UUIDv5 is defined over SHA-1
        _EVENT_NAMESPACE.bytes + f"{dataset.seed}/".encode(), usedforsecurity=False
    )
    for start in range(0, plan.size, _EVENT_CHUNK):
        stop = min(start + _EVENT_CHUNK, plan.size)
        occurred = _iso_utc(plan.at[start:stop]).tolist()
        rows = plan.order_pos[start:stop].tolist()
        kinds = plan.kind[start:stop].tolist()
        status_codes = plan.status[start:stop].tolist()
        for row, kind, code, at in zip(rows, kinds, status_codes, occurred, strict=True):
            order_id = order_ids[row]
            event_type = EVENT_TYPES[kind]
            digest = prefix.copy()
            digest.update(f"{order_id}/{event_type}".encode())
            yield {
                "event_id": _uuid5_text(digest.digest()),
                "event_type": event_type,
                "order_id": order_id,
                "customer_id": customer_ids[row],
                "status": statuses[code],
                "occurred_at": at,
                "seller_id": sellers[row] if kind in (2, 3) else None,
            }


def count_order_status_events(dataset: OlistDataset) -> int:
    """How many events :func:`order_status_events` yields for this data set."""
    return _EventPlan.stages(dataset)[0]


def take_events(dataset: OlistDataset, n: int) -> list[dict]:
    """The first ``n`` events of :func:`order_status_events` (raises if there are fewer)."""
    events = list(islice(order_status_events(dataset), n))
    if len(events) < n:
        raise ValueError(f"the data set has only {len(events)} events, {n} were asked for")
    return events


def event_uuid(seed: int, order_id: str, event_type: str) -> str:
    """The event id of one order's event: ``uuid5(namespace, f"{seed}/{order_id}/{type}")``."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{seed}/{order_id}/{event_type}"))


# --------------------------------------------------------------------------------------------
# Text building blocks (vectorized, zero-copy where the width is fixed)

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_TWO_DIGITS = pa.array([f"{i:02d}" for i in range(100)])


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(stream.encode())])


def _fixed_width(matrix: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """A ``(n, w)`` uint8 matrix of ASCII codes -> arrow string array, without copies."""
    n, width = matrix.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = pa.py_buffer(np.ascontiguousarray(matrix))
    if valid is None or bool(valid.all()):
        return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), data])
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    nulls = int(n - np.count_nonzero(valid))
    return pa.Array.from_buffers(
        pa.string(), n, [bitmap, pa.py_buffer(offsets), data], null_count=nulls
    )


def _hex_ids(rng: np.random.Generator, n: int) -> pa.Array:
    """``n`` random 32-hex lowercase ids (128 random bits each)."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16)
    out = np.empty((n, 32), dtype=np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    return _fixed_width(out)


def _put_digits(matrix: np.ndarray, start: int, values: np.ndarray, width: int) -> None:
    for k in range(width):
        matrix[:, start + width - 1 - k] = 48 + (values // 10**k) % 10


def _timestamp_matrix(seconds: np.ndarray, sep: str, suffix: str = "") -> np.ndarray:
    seconds = np.asarray(seconds, dtype=np.int64)
    n = len(seconds)
    moment = seconds.astype("datetime64[s]")
    month = moment.astype("datetime64[M]")
    year = month.astype("datetime64[Y]").astype(np.int64) + 1970
    month_no = month.astype(np.int64) % 12 + 1
    day = (moment.astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.int64) + 1
    clock = seconds % DAY
    out = np.empty((n, 19 + len(suffix)), dtype=np.uint8)
    _put_digits(out, 0, year, 4)
    out[:, 4] = out[:, 7] = ord("-")
    _put_digits(out, 5, month_no, 2)
    _put_digits(out, 8, day, 2)
    out[:, 10] = ord(sep)
    _put_digits(out, 11, clock // HOUR, 2)
    out[:, 13] = out[:, 16] = ord(":")
    _put_digits(out, 14, clock // 60 % 60, 2)
    _put_digits(out, 17, clock % 60, 2)
    for k, ch in enumerate(suffix.encode()):
        out[:, 19 + k] = ch
    return out


def _timestamps(seconds: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Epoch seconds -> ``YYYY-MM-DD HH:MM:SS`` text (``None`` where not ``valid``)."""
    return _fixed_width(_timestamp_matrix(seconds, " "), valid)


def _iso_utc(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds -> ``YYYY-MM-DDTHH:MM:SSZ`` as a numpy str array."""
    matrix = _timestamp_matrix(seconds, "T", "Z")
    return np.ascontiguousarray(matrix).view("S20").reshape(len(seconds)).astype("U20")


def _ints(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    mask = None if valid is None else ~np.asarray(valid)
    return pc.cast(pa.array(np.asarray(values, dtype=np.int64), mask=mask), pa.string())


def _money(cents: np.ndarray) -> pa.Array:
    """Integer cents -> ``"129.90"``."""
    cents = np.asarray(cents, dtype=np.int64)
    whole = pc.cast(pa.array(cents // 100), pa.string())
    return pc.binary_join_element_wise(whole, _TWO_DIGITS.take(pa.array(cents % 100)), ".")


def _degrees(values: np.ndarray) -> pa.Array:
    """Coordinates -> text with six decimals (``"-23.550520"``)."""
    micro = np.round(np.asarray(values) * 1e6).astype(np.int64)
    sign = pa.array(np.where(micro < 0, "-", ""))
    whole = pc.cast(pa.array(np.abs(micro) // 1_000_000), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(np.abs(micro) % 1_000_000), pa.string()), 6, "0")
    return pc.binary_join_element_wise(sign, whole, ".", frac, "")  # separator is ""


def _text(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    mask = None if valid is None else ~np.asarray(valid)
    return pa.array(values, type=pa.string(), mask=mask)


def _pick(vocabulary: pa.Array, index: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    index = np.asarray(index, dtype=np.int64)
    if valid is None:
        return vocabulary.take(pa.array(index))
    return vocabulary.take(pa.array(np.where(valid, index, 0), mask=~np.asarray(valid)))


def _table(name: str, columns: dict[str, pa.Array]) -> pa.Table:
    schema = FILE_SOURCES[name].raw_schema()
    assert list(columns) == schema.names, (name, list(columns))
    return pa.Table.from_arrays(list(columns.values()), schema=schema)


def _group_positions(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For groups of ``counts`` rows: group index and 0-based position per row, group starts."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    group = np.repeat(np.arange(len(counts)), counts)
    position = np.arange(int(counts.sum())) - starts[group]
    return group, position, starts


def _distance(city_a: np.ndarray, city_b: np.ndarray) -> np.ndarray:
    """Approximate distance in degrees between two cities (scaled longitude)."""
    dlat = pt_br.CITY_LAT[city_a] - pt_br.CITY_LAT[city_b]
    mean_lat = np.radians((pt_br.CITY_LAT[city_a] + pt_br.CITY_LAT[city_b]) / 2)
    dlng = (pt_br.CITY_LNG[city_a] - pt_br.CITY_LNG[city_b]) * np.cos(mean_lat)
    return np.hypot(dlat, dlng)


def _pretty_cents(rng: np.random.Generator, reais: np.ndarray) -> np.ndarray:
    """Prices as shops write them: many end in ,90 or ,99."""
    n = len(reais)
    ending = np.array([90, 99, 0, -1])[rng.choice(4, size=n, p=[0.30, 0.25, 0.15, 0.30])]
    ending = np.where(ending < 0, rng.integers(0, 100, n), ending)
    return np.maximum(np.floor(reais).astype(np.int64) * 100 + ending, 85)


def _purchase_seconds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Purchase moments following Olist's monthly volume, weekday and hour-of-day profile."""
    days = np.arange(FIRST_PURCHASE_DAY, LAST_PURCHASE_DAY + 1)
    year, month, _ = MONTHLY_ORDERS[0]
    index = (days.astype("datetime64[M]") - np.datetime64(f"{year}-{month:02d}", "M")).astype(int)
    volume = np.array([c for _, _, c in MONTHLY_ORDERS], dtype=float)  # consecutive months
    weights = volume[index] / np.bincount(index)[index]
    weekday = (days.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    weights *= _WEEKDAY[weekday]
    weights[days == _BLACK_FRIDAY] *= 4.0
    day = days[rng.choice(len(days), size=n, p=weights / weights.sum())]
    hour = rng.choice(24, size=n, p=_HOURLY / _HOURLY.sum())
    second_of_hour = rng.integers(0, HOUR, n)
    return day.astype("datetime64[s]").astype(np.int64) + hour * HOUR + second_of_hour


def _day_floor(seconds: np.ndarray) -> np.ndarray:
    return seconds - seconds % DAY


def _lognormal_seconds(rng: np.random.Generator, n: int, median: float, sigma: float) -> np.ndarray:
    return np.round(rng.lognormal(np.log(median), sigma, n)).astype(np.int64)


def _sentiment_pick(
    rng: np.random.Generator, vocabularies: tuple[tuple[str, ...], ...], group: np.ndarray
) -> pa.Array:
    """One random entry per row from the vocabulary of the row's group."""
    flat = pa.array([text for vocabulary in vocabularies for text in vocabulary])
    sizes = np.array([len(v) for v in vocabularies])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    index = offsets[group] + (rng.random(len(group)) * sizes[group]).astype(np.int64)
    return flat.take(pa.array(index))


# --------------------------------------------------------------------------------------------
# The builder


class _Builder:
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
        self.tables["olist_order_reviews"] = _reviews_table(
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
        rng = _rng(self.seed, "sellers")
        s = max(MIN_SELLERS, round(self.n * SELLERS_PER_ORDER))
        self.seller_count = s
        state = pt_br.sample_states(rng, s, sellers=True)
        self.seller_city = pt_br.sample_cities(rng, state)
        zips = pt_br.zip_prefix_numbers(rng, self.seller_city)
        self.seller_zips = zips
        self.seller_popularity = rng.lognormal(0.0, 1.2, s)
        ids = _hex_ids(rng, s)
        self.seller_ids = ids
        self.tables["olist_sellers"] = _table(
            "olist_sellers",
            {
                "seller_id": ids,
                "seller_zip_code_prefix": _text(pt_br.format_zip_prefixes(zips)),
                "seller_city": _pick(pa.array(pt_br.CITY_NAMES_OLIST), self.seller_city),
                "seller_state": _pick(pa.array(pt_br.UFS), state),
            },
        )

    def _products(self) -> None:
        rng = _rng(self.seed, "products")
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
        level = np.array([_PRICE_LEVEL.get(c[0], 0.0) for c in CATEGORIES])[category]
        reais = np.minimum(rng.lognormal(np.log(74.0) + level, 0.85), 6735.0)
        self.product_cents = _pretty_cents(rng, reais)
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
        self.product_ids = _hex_ids(rng, p)
        self.tables["olist_products"] = _table(
            "olist_products",
            {
                "product_id": self.product_ids,
                "product_category_name": _pick(
                    pa.array([c[0] for c in CATEGORIES]), category, has_category
                ),
                "product_name_lenght": _ints(name_len, has_category),
                "product_description_lenght": _ints(desc_len, has_category),
                "product_photos_qty": _ints(photos, has_category),
                "product_weight_g": _ints(weight_g),
                "product_length_cm": _ints(length),
                "product_height_cm": _ints(height),
                "product_width_cm": _ints(width),
            },
        )

    # -- customers and orders ----------------------------------------------------------------

    def _people(self) -> None:
        """The people behind the orders: a few buy more than once."""
        rng = _rng(self.seed, "people")
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
            "customer_name": _text(names.full),
            "customer_cpf": _text(pt_br.cpf_numbers(rng, people)),
            "customer_email": _text(pt_br.emails(rng, names)),
            "customer_phone": _text(pt_br.phones(rng, state)),
            "customer_street_address": _text(pt_br.street_addresses(rng, people)),
        }
        self.person_ids = _hex_ids(rng, people)

    def _orders(self) -> None:
        rng = _rng(self.seed, "orders")
        n = self.n
        self.purchase = np.sort(_purchase_seconds(rng, n))
        statuses = [s for s, _ in ORDER_STATUSES]
        shares = np.array([p for _, p in ORDER_STATUSES])
        self.status = rng.choice(len(statuses), size=n, p=shares / shares.sum())
        self.status_names = statuses
        self.order_ids = _hex_ids(rng, n)
        self.customer_ids = _hex_ids(rng, n)
        self.order_city = self.person_city[self.person_of_order]
        person = pa.array(self.person_of_order)
        zips = pt_br.format_zip_prefixes(self.person_zips)
        self.tables["olist_customers"] = _table(
            "olist_customers",
            {
                "customer_id": self.customer_ids,
                "customer_unique_id": self.person_ids.take(person),
                "customer_zip_code_prefix": _text(zips).take(person),
                "customer_city": _pick(pa.array(pt_br.CITY_NAMES_OLIST), self.order_city),
                "customer_state": _pick(pa.array(pt_br.UFS), self.person_state).take(person),
                **{column: values.take(person) for column, values in self.person_text.items()},
            },
        )
        del self.person_text

    def _items(self) -> None:
        rng = _rng(self.seed, "items")
        n = self.n
        per_order = np.array(ITEMS_PER_ORDER) / sum(ITEMS_PER_ORDER)
        counts = rng.choice(len(per_order), size=n, p=per_order) + 1
        order, position, starts = _group_positions(counts)
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
        dist = _distance(self.seller_city[seller], self.order_city[order])
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
        rng = _rng(self.seed, "payments")
        n = self.n
        total = np.add.reduceat(self.item_price + self.item_freight, self.item_starts)
        self.order_total = total
        main = rng.choice(len(PAYMENT_TYPES), size=n, p=_PAYMENT_P)
        self.main_payment = main
        vouchers = np.minimum(rng.geometric(0.55, n), 12)
        mixed = (main == 0) & (rng.random(n) < 0.015)  # card plus one or two vouchers
        extra = 1 + (rng.random(n) < 0.25)
        rows = np.where(main == 2, vouchers, np.where(mixed, extra + 1, 1))
        rows = np.minimum(rows, total)  # never more payments than cents
        order, position, starts = _group_positions(rows)
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
        spread = rng.choice(10, size=n, p=_INSTALLMENTS_P) + 1
        installments = np.where(rng.random(n) < 0.45, 1, np.minimum(spread, max_installments))
        installments = installments[order]
        installments = np.where(kind == 0, installments, 1)
        self.tables["olist_order_payments"] = _table(
            "olist_order_payments",
            {
                "order_id": self.order_ids.take(pa.array(order)),
                "payment_sequential": _ints(position + 1),
                "payment_type": _pick(pa.array(PAYMENT_TYPES), kind),
                "payment_installments": _ints(installments),
                "payment_value": _money(value),
            },
        )

    def _timeline(self) -> None:
        """Lifecycle timestamps consistent with each order's final status."""
        rng = _rng(self.seed, "timeline")
        n = self.n
        name = np.array(self.status_names)[self.status]
        boleto = self.main_payment == 1
        quick = np.where(
            rng.random(n) < 0.75,
            60 + np.round(rng.exponential(12 * 60, n)).astype(np.int64),
            _lognormal_seconds(rng, n, 6 * HOUR, 0.8),
        )
        approve_delay = np.where(boleto, _lognormal_seconds(rng, n, 30 * HOUR, 0.4), quick)
        approve_delay = np.clip(approve_delay, 60, 20 * DAY)
        carrier_delay = np.clip(_lognormal_seconds(rng, n, 2.2 * DAY, 0.6), HOUR, 30 * DAY)
        dist = _distance(self.first_seller_city, self.order_city)
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
        estimated = _day_floor(purchase) + estimated_days * DAY
        self.estimated = estimated
        self.tables["olist_orders"] = _table(
            "olist_orders",
            {
                "order_id": self.order_ids,
                "customer_id": self.customer_ids,
                "order_status": _pick(pa.array(self.status_names), self.status),
                "order_purchase_timestamp": _timestamps(purchase),
                "order_approved_at": _timestamps(approved, has_approved),
                "order_delivered_carrier_date": _timestamps(carrier, has_carrier),
                "order_delivered_customer_date": _timestamps(delivered, has_delivered),
                "order_estimated_delivery_date": _timestamps(estimated),
            },
        )
        limit_days = rng.integers(5, 9, n)
        base = np.where(has_approved, approved, purchase)
        shipping_limit = (base + limit_days * DAY)[self.item_order]
        order = pa.array(self.item_order)
        self.tables["olist_order_items"] = _table(
            "olist_order_items",
            {
                "order_id": self.order_ids.take(order),
                "order_item_id": _ints(self.item_position + 1),
                "product_id": self.product_ids.take(pa.array(self.item_product)),
                "seller_id": self.seller_ids.take(pa.array(self.item_seller)),
                "shipping_limit_date": _timestamps(shipping_limit),
                "price": _money(self.item_price),
                "freight_value": _money(self.item_freight),
            },
        )

    # -- geography, translation --------------------------------------------------------------

    def _geolocation(self) -> None:
        rng = _rng(self.seed, "geolocation")
        zips = np.unique(np.concatenate([self.person_zips, self.seller_zips]))
        city = pt_br.city_of_zip_prefix(zips)
        lat, lng = pt_br.coordinates(rng, city, spread=0.06)
        rows = rng.choice(3, size=len(zips), p=[0.40, 0.35, 0.25]) + 1
        group, _, _ = _group_positions(rows)
        box = pt_br.STATE_BBOXES[pt_br.CITY_STATE[city[group]]]
        lat = np.clip(lat[group] + rng.normal(0, 0.004, len(group)), box[:, 0], box[:, 1])
        lng = np.clip(lng[group] + rng.normal(0, 0.004, len(group)), box[:, 2], box[:, 3])
        self.tables["olist_geolocation"] = _table(
            "olist_geolocation",
            {
                "geolocation_zip_code_prefix": _text(pt_br.format_zip_prefixes(zips[group])),
                "geolocation_lat": _degrees(lat),
                "geolocation_lng": _degrees(lng),
                "geolocation_city": _pick(pa.array(pt_br.CITY_NAMES_OLIST), city[group]),
                "geolocation_state": _pick(pa.array(pt_br.UFS), pt_br.CITY_STATE[city[group]]),
            },
        )

    def _translation(self) -> None:
        self.tables["product_category_name_translation"] = _table(
            "product_category_name_translation",
            {
                "product_category_name": pa.array([c[0] for c in CATEGORIES]),
                "product_category_name_english": pa.array([c[1] for c in CATEGORIES]),
            },
        )


def _reviews_table(
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
    rng = _rng(seed, "reviews")
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
    pick = (rng.random(n)[:, None] >= cum[group]).sum(axis=1)
    score = scores[pick]
    has_review = rng.random(n) < 0.992
    p_message = np.array([0.0, 0.75, 0.65, 0.50, 0.30, 0.33])[score]
    has_message = rng.random(n) < p_message
    has_title = np.where(has_message, rng.random(n) < 0.25, rng.random(n) < 0.02)
    sentiment = np.where(score >= 4, 0, np.where(score == 3, 1, 2))
    title = _sentiment_pick(rng, (_TITLES_GOOD, _TITLES_MID, _TITLES_BAD), sentiment)
    phrases = (_PHRASES_GOOD, _PHRASES_MID, _PHRASES_BAD)
    first = _sentiment_pick(rng, phrases, sentiment)
    second = _sentiment_pick(rng, phrases, sentiment)
    two = (rng.random(n) < 0.3) & ~pc.equal(first, second).to_numpy(zero_copy_only=False)
    message = pc.if_else(two, pc.binary_join_element_wise(first, second, ". "), first)
    # Free text leaks personal data now and then: a phone number or an e-mail address.
    contact_kind = rng.integers(0, len(_CONTACT_PREFIXES), n)
    contact = pc.if_else(
        contact_kind % 2 == 0,
        customers["customer_phone"].combine_chunks(),
        customers["customer_email"].combine_chunks(),
    )
    prefix = _pick(pa.array(_CONTACT_PREFIXES), contact_kind)
    leak = has_message & (rng.random(n) < 0.02)
    leaked = pc.binary_join_element_wise(message, ".", prefix, contact, "")
    message = pc.if_else(leak, leaked, message)
    base = np.where(delivered, delivered_at, estimated_at)
    created = _day_floor(base) + DAY
    answer = created + np.clip(_lognormal_seconds(rng, n, 30 * HOUR, 0.9), HOUR, 60 * DAY)
    review_ids = _hex_ids(rng, n)
    keep = np.flatnonzero(has_review)
    k = pa.array(keep)
    return _table(
        "olist_order_reviews",
        {
            "review_id": review_ids.take(k),
            "order_id": order_ids.take(k),
            "review_score": _ints(score[keep]),
            "review_comment_title": pc.if_else(has_title, title, None).take(k),
            "review_comment_message": pc.if_else(has_message, message, None).take(k),
            "review_creation_date": _timestamps(created[keep]),
            "review_answer_timestamp": _timestamps(answer[keep]),
        },
    )


# --------------------------------------------------------------------------------------------
# Events


def _uuid5_text(sha1_digest: bytes) -> str:
    """The text of a UUIDv5 whose SHA-1 digest is given (same as ``str(uuid.uuid5(...))``)."""
    raw = bytearray(sha1_digest[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _seconds(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Timestamp text -> (epoch seconds, valid mask)."""
    parsed = pc.cast(column, pa.timestamp("s")).combine_chunks()
    valid = np.asarray(parsed.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    values = parsed.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.int64), valid


@dataclass
class _EventPlan:
    """All events of a data set as parallel arrays, sorted by time."""

    order_pos: np.ndarray
    kind: np.ndarray
    status: np.ndarray
    at: np.ndarray
    order_ids: list[str]
    customer_ids: list[str]
    first_sellers: list[str | None]
    status_names: list[str]

    @property
    def size(self) -> int:
        return len(self.kind)

    @staticmethod
    def stages(dataset: OlistDataset):
        """Per-stage presence masks and times; first element is the total event count."""
        orders = dataset.tables["olist_orders"]
        status = orders["order_status"]
        purchase, _ = _seconds(orders["order_purchase_timestamp"])
        approved, has_approved = _seconds(orders["order_approved_at"])
        carrier, has_carrier = _seconds(orders["order_delivered_carrier_date"])
        delivered, has_delivered = _seconds(orders["order_delivered_customer_date"])

        def status_is(*names: str) -> np.ndarray:
            mask = pc.is_in(status, value_set=pa.array(names))
            return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)

        n = len(purchase)
        canceled = status_is("canceled", "unavailable")
        masks = (
            np.ones(n, dtype=bool),
            has_approved,
            has_carrier & status_is("shipped", "delivered"),
            has_delivered & status_is("delivered"),
            canceled,
        )
        rng = _rng(dataset.seed, "events.cancel")
        cancel_delay = np.clip(_lognormal_seconds(rng, n, 20 * HOUR, 1.0), 60, 30 * DAY)
        cancel_at = np.where(has_approved, approved, purchase) + cancel_delay
        times = (purchase, approved, carrier, delivered, cancel_at)
        total = int(sum(int(m.sum()) for m in masks))
        return total, masks, times, status

    @classmethod
    def of(cls, dataset: OlistDataset) -> _EventPlan:
        _, masks, times, status = cls.stages(dataset)
        orders = dataset.tables["olist_orders"]
        names = [s for s, _ in ORDER_STATUSES]
        final = pc.index_in(status, value_set=pa.array(names))
        final = np.asarray(final.to_numpy(zero_copy_only=False), dtype=np.int64)
        natural = [names.index(s) for s in ("created", "approved", "shipped", "delivered")]
        kept_after_approval = np.isin(final, [names.index("invoiced"), names.index("processing")])
        positions, kinds, statuses, moments = [], [], [], []
        for kind, (mask, moment) in enumerate(zip(masks, times, strict=True)):
            rows = np.flatnonzero(mask)
            if kind == 4:
                code = final[rows]
            elif kind == 1:
                code = np.where(kept_after_approval[rows], final[rows], natural[1])
            else:
                code = np.full(len(rows), natural[kind])
            positions.append(rows)
            kinds.append(np.full(len(rows), kind, dtype=np.int64))
            statuses.append(code)
            moments.append(moment[rows])
        pos = np.concatenate(positions)
        kind = np.concatenate(kinds)
        at = np.concatenate(moments)
        order = np.lexsort((kind, pos, at))
        items = dataset.tables["olist_order_items"]
        first = pc.equal(items["order_item_id"], "1")
        first_items = items.filter(first)
        where = pc.index_in(orders["order_id"], value_set=first_items["order_id"].combine_chunks())
        sellers = first_items["seller_id"].take(where).to_pylist()
        return cls(
            order_pos=pos[order],
            kind=kind[order],
            status=np.concatenate(statuses)[order],
            at=at[order],
            order_ids=orders["order_id"].to_pylist(),
            customer_ids=orders["customer_id"].to_pylist(),
            first_sellers=sellers,
            status_names=names,
        )
