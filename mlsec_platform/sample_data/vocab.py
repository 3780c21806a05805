"""Reference data of the Olist generator: categories, status shares, volumes and vocabularies.

The numbers are those of the public Olist data set (2016-09 .. 2018-10) where it has them;
the builder draws every table from these.
"""

from __future__ import annotations

import numpy as np

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
PRICE_LEVEL: dict[str, float] = {
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
BLACK_FRIDAY = np.datetime64("2017-11-24")

HOURLY_ORDERS = np.array([
    2394, 1170, 510, 272, 206, 188, 502, 1231, 2967, 4785, 6177, 6578,
    5995, 6518, 6569, 6454, 6675, 6150, 5769, 5982, 6193, 6217, 5816, 4123,
], dtype=np.float64)  # fmt: skip
WEEKDAY_FACTORS = np.array([1.15, 1.15, 1.10, 1.05, 1.00, 0.75, 0.80])  # Monday .. Sunday

ORDERS_PER_PERSON: tuple[float, ...] = (0.969, 0.0277, 0.0024, 0.0006, 0.0002, 0.0001)
ITEMS_PER_ORDER: tuple[float, ...] = (0.900, 0.075, 0.015, 0.006, 0.0025, 0.0015)
PRODUCTS_PER_ORDER = 0.3295  # Olist: 32,951 products for 99,441 orders
SELLERS_PER_ORDER = 0.0311  # Olist: 3,095 sellers
MIN_PRODUCTS = 100
MIN_SELLERS = 10

PAYMENT_TYPES: tuple[str, ...] = ("credit_card", "boleto", "voucher", "debit_card")
#: Share of orders by their main payment type; ~1.5 % of card orders also use vouchers, so
#: rows end up ~74 % card, ~19 % boleto, ~5.5 % voucher, ~1.5 % debit card as in Olist.
PAYMENT_SHARES = (0.767, 0.195, 0.023, 0.015)

#: Installments of a card payment that is spread (Olist has peaks at 2-4, 8 and 10).
INSTALLMENT_SHARES = np.array([0.05, 0.22, 0.19, 0.13, 0.09, 0.07, 0.03, 0.07, 0.01, 0.14])

REVIEW_SCORES: dict[int, float] = {5: 0.578, 4: 0.193, 3: 0.082, 2: 0.032, 1: 0.115}

TITLES_GOOD = (
    "Recomendo", "Ótimo", "Excelente", "Muito bom", "Super recomendo", "Adorei", "Perfeito",
    "Chegou rápido", "Bom produto", "Nota 10",
)  # fmt: skip
TITLES_MID = ("Razoável", "Poderia ser melhor", "Ok", "Mais ou menos", "Atrasou um pouco")
TITLES_BAD = (
    "Não recebi", "Péssimo", "Decepcionado", "Não recomendo", "Produto errado",
    "Veio com defeito", "Horrível",
)  # fmt: skip
PHRASES_GOOD = (
    "Produto excelente", "Chegou antes do prazo", "Recomendo a loja", "Muito bem embalado",
    "Produto de ótima qualidade", "Entrega rápida", "Superou minhas expectativas",
    "Tudo certo com a compra", "Produto conforme o anúncio", "Comprarei novamente",
    "Gostei muito, minha filha adorou", "Ótimo custo-benefício", "Vendedor atencioso",
    "Chegou tudo certinho, obrigado", 'Veio escrito "frágil" na caixa e chegou intacto',
)  # fmt: skip
PHRASES_MID = (
    "Produto bom, mas a entrega atrasou", "O produto é bom, porém a cor é diferente da foto",
    "Chegou no prazo mas a embalagem estava amassada", "Esperava mais pelo preço",
    "Atende, mas o acabamento poderia ser melhor", "Demorou um pouco para chegar",
)  # fmt: skip
PHRASES_BAD = (
    "Não recebi o produto", "Produto veio com defeito", "Até agora nada", "Veio o produto errado",
    "Comprei dois e recebi apenas um", "Ainda não recebi e o prazo já passou",
    "Péssimo atendimento, ninguém responde", "A qualidade é muito ruim",
    "Quero meu dinheiro de volta", "Produto diferente do anunciado",
    'Veio "usado", com marcas de uso', "Entrega muito atrasada, não recomendo",
)  # fmt: skip
CONTACT_PREFIXES = (
    " Meu telefone é ", " Entrem em contato comigo: ", " Favor responder no e-mail ",
    " Contato: ",
)  # fmt: skip

DAY = 86_400
HOUR = 3_600
