"""Brazilian (pt_BR) reference data and vectorized generators of personal data.

Everything here is synthetic: names are drawn from common Brazilian first names and surnames,
CPFs are random numbers with valid check digits, phones use the area codes (DDD) of the
person's state, and zip prefixes fall in the state's real CEP range. The generators take a
``numpy.random.Generator`` and work on whole arrays at once (no per-row Python), so a million
people take a few seconds. The same generator state gives the same output.

Geography is deliberately coarse: each state has a handful of real cities (capital first) with
approximate coordinates; a state's 5-digit zip-prefix range is split into one contiguous block
per city, so a zip prefix always maps back to one city and state.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np

# --------------------------------------------------------------------------------------------
# Names

FEMALE_FIRST_NAMES: tuple[str, ...] = (
    "Maria", "Ana", "Francisca", "Antônia", "Adriana", "Juliana", "Márcia", "Fernanda",
    "Patrícia", "Aline", "Sandra", "Camila", "Amanda", "Bruna", "Jéssica", "Letícia", "Júlia",
    "Luciana", "Vanessa", "Mariana", "Gabriela", "Vera", "Vitória", "Larissa", "Cláudia",
    "Beatriz", "Luana", "Rita", "Sônia", "Renata", "Eliane", "Josefa", "Simone", "Natália",
    "Cristiane", "Carla", "Débora", "Rosângela", "Jaqueline", "Rosa", "Daniela", "Aparecida",
    "Marlene", "Terezinha", "Raimunda", "Andréa", "Fabiana", "Lúcia", "Raquel", "Ângela",
    "Rafaela", "Joana", "Luzia", "Elaine", "Daniele", "Regina", "Daiane", "Sueli",
    "Alessandra", "Isabel", "Isabela", "Manuela", "Alice", "Laura", "Helena", "Valentina",
    "Sophia", "Heloísa", "Lívia", "Giovanna", "Lorena", "Yasmin", "Carolina", "Tatiane",
    "Priscila",
)  # fmt: skip

MALE_FIRST_NAMES: tuple[str, ...] = (
    "José", "João", "Antônio", "Francisco", "Carlos", "Paulo", "Pedro", "Lucas", "Luiz",
    "Marcos", "Luís", "Gabriel", "Rafael", "Daniel", "Marcelo", "Bruno", "Eduardo", "Felipe",
    "Raimundo", "Rodrigo", "Manoel", "Mateus", "André", "Fernando", "Fábio", "Leonardo",
    "Gustavo", "Guilherme", "Leandro", "Tiago", "Anderson", "Ricardo", "Márcio", "Jorge",
    "Sebastião", "Alexandre", "Roberto", "Edson", "Diego", "Vitor", "Sérgio", "Cláudio",
    "Matheus", "Thiago", "Geraldo", "Adriano", "Luciano", "Júlio", "Renato", "Alex",
    "Vinícius", "Rogério", "Samuel", "Ronaldo", "Mário", "Flávio", "Douglas", "Igor", "Davi",
    "Enzo", "Miguel", "Arthur", "Heitor", "Bernardo", "Théo", "Murilo", "Henrique", "Caio",
    "Otávio", "Benedito", "Wellington", "Robson", "Renan", "Emerson", "Hugo",
)  # fmt: skip

SURNAMES: tuple[str, ...] = (
    "Silva", "Santos", "Oliveira", "Souza", "Rodrigues", "Ferreira", "Alves", "Pereira",
    "Lima", "Gomes", "Costa", "Ribeiro", "Martins", "Carvalho", "Almeida", "Lopes", "Soares",
    "Fernandes", "Vieira", "Barbosa", "Rocha", "Dias", "Nascimento", "Andrade", "Moreira",
    "Nunes", "Marques", "Machado", "Mendes", "Freitas", "Cardoso", "Ramos", "Gonçalves",
    "Santana", "Teixeira", "Araújo", "Pinto", "Monteiro", "Moura", "Correia", "Cavalcanti",
    "Batista", "Campos", "Duarte", "Castro", "Xavier", "Reis", "Barros", "Sousa", "Fonseca",
    "Borges", "Melo", "Miranda", "Pires", "Azevedo", "Farias", "Cunha", "Medeiros", "Rezende",
    "Brito", "Nogueira", "Tavares", "Siqueira", "Moraes", "Cruz", "Leite", "Bezerra",
    "Queiroz", "Sampaio", "Macedo", "Aguiar", "Pacheco", "Guimarães", "Figueiredo", "Coelho",
    "Viana", "Peixoto", "Prado", "Lacerda", "Bastos", "Paiva", "Amaral", "Cordeiro", "Brandão",
    "Magalhães", "Matos", "Porto", "Vasconcelos", "Santiago", "Fagundes", "Assis",
    "Bittencourt", "Camargo", "Franco", "Maciel", "Toledo", "Neves", "Sales", "Pimentel",
    "Rangel",
)  # fmt: skip

FIRST_NAMES: tuple[str, ...] = FEMALE_FIRST_NAMES + MALE_FIRST_NAMES

EMAIL_DOMAINS: tuple[tuple[str, float], ...] = (
    ("gmail.com", 0.45), ("hotmail.com", 0.20), ("yahoo.com.br", 0.09), ("outlook.com", 0.08),
    ("uol.com.br", 0.06), ("bol.com.br", 0.05), ("terra.com.br", 0.03), ("ig.com.br", 0.02),
    ("icloud.com", 0.02),
)  # fmt: skip

# --------------------------------------------------------------------------------------------
# Streets

STREET_TYPES: tuple[tuple[str, float], ...] = (
    ("Rua", 0.68), ("Avenida", 0.20), ("Travessa", 0.07), ("Alameda", 0.05),
)  # fmt: skip

STREET_NAMES: tuple[str, ...] = (
    "das Flores", "São João", "Sete de Setembro", "XV de Novembro", "Tiradentes",
    "Dom Pedro II", "Getúlio Vargas", "Santos Dumont", "Marechal Deodoro", "Rui Barbosa",
    "Barão do Rio Branco", "José Bonifácio", "Treze de Maio", "Primeiro de Maio",
    "Duque de Caxias", "Floriano Peixoto", "Castro Alves", "Machado de Assis",
    "Monteiro Lobato", "Olavo Bilac", "da Independência", "da Liberdade", "da Paz",
    "das Palmeiras", "dos Ipês", "das Acácias", "dos Jasmins", "das Orquídeas",
    "das Mangueiras", "dos Girassóis", "Brasil", "Paulista", "Atlântica", "Ipiranga",
    "Amazonas", "Bahia", "Minas Gerais", "Paraná", "Goiás", "Pernambuco", "Santa Catarina",
    "São Paulo", "Rio Grande do Sul", "do Comércio", "da Matriz", "da Igreja", "do Rosário",
    "Visconde de Mauá", "Princesa Isabel", "Anita Garibaldi", "Bento Gonçalves",
    "Padre Anchieta", "Almirante Barroso", "Coronel Fernandes", "Professor Lima",
    "Doutor Arnaldo", "Santa Luzia", "São Sebastião", "Nossa Senhora Aparecida",
    "Juscelino Kubitschek", "Carlos Gomes", "Voluntários da Pátria",
)  # fmt: skip

# --------------------------------------------------------------------------------------------
# States


@dataclass(frozen=True)
class City:
    name: str
    lat: float
    lng: float


@dataclass(frozen=True)
class State:
    """A federative unit: weights are shares of Olist customers and sellers (in percent)."""

    uf: str
    name: str
    customer_weight: float
    seller_weight: float
    ddds: tuple[int, ...]
    zip_range: tuple[int, int]
    bbox: tuple[float, float, float, float]  # lat_min, lat_max, lng_min, lng_max
    cities: tuple[City, ...]


def _c(*cities: tuple[str, float, float]) -> tuple[City, ...]:
    return tuple(City(*c) for c in cities)


STATES: tuple[State, ...] = (
    State("SP", "São Paulo", 41.98, 59.7, (11, 12, 13, 14, 15, 16, 17, 18, 19), (1000, 19999),
          (-25.35, -19.75, -53.15, -44.15),
          _c(("São Paulo", -23.55, -46.63), ("Guarulhos", -23.46, -46.53),
             ("Campinas", -22.91, -47.06), ("São Bernardo do Campo", -23.69, -46.56),
             ("Santo André", -23.66, -46.53), ("Osasco", -23.53, -46.79),
             ("Ribeirão Preto", -21.18, -47.81), ("Sorocaba", -23.50, -47.46),
             ("Santos", -23.96, -46.33), ("São José dos Campos", -23.18, -45.88))),
    State("RJ", "Rio de Janeiro", 12.92, 5.5, (21, 22, 24), (20000, 28999),
          (-23.40, -20.75, -44.90, -40.95),
          _c(("Rio de Janeiro", -22.91, -43.17), ("Niterói", -22.88, -43.10),
             ("Nova Iguaçu", -22.76, -43.45), ("Duque de Caxias", -22.79, -43.31),
             ("São Gonçalo", -22.83, -43.05), ("Petrópolis", -22.51, -43.18),
             ("Campos dos Goytacazes", -21.75, -41.32))),
    State("MG", "Minas Gerais", 11.70, 7.9, (31, 32, 33, 34, 35, 37, 38), (30000, 39999),
          (-22.95, -14.20, -51.05, -39.85),
          _c(("Belo Horizonte", -19.92, -43.94), ("Uberlândia", -18.92, -48.28),
             ("Contagem", -19.93, -44.05), ("Juiz de Fora", -21.76, -43.35),
             ("Betim", -19.97, -44.20), ("Montes Claros", -16.73, -43.86),
             ("Uberaba", -19.75, -47.93))),
    State("RS", "Rio Grande do Sul", 5.50, 4.2, (51, 53, 54, 55), (90000, 99999),
          (-33.75, -27.05, -57.65, -49.70),
          _c(("Porto Alegre", -30.03, -51.23), ("Caxias do Sul", -29.17, -51.18),
             ("Canoas", -29.92, -51.18), ("Pelotas", -31.77, -52.34),
             ("Santa Maria", -29.68, -53.81), ("Novo Hamburgo", -29.68, -51.13))),
    State("PR", "Paraná", 5.07, 11.3, (41, 42, 43, 44, 45, 46), (80000, 87999),
          (-26.72, -22.50, -54.65, -48.00),
          _c(("Curitiba", -25.43, -49.27), ("Londrina", -23.31, -51.16),
             ("Maringá", -23.42, -51.94), ("Ponta Grossa", -25.09, -50.16),
             ("Cascavel", -24.96, -53.46), ("Foz do Iguaçu", -25.55, -54.59))),
    State("SC", "Santa Catarina", 3.66, 6.1, (47, 48, 49), (88000, 89999),
          (-29.40, -25.95, -53.85, -48.30),
          _c(("Florianópolis", -27.60, -48.55), ("Joinville", -26.30, -48.85),
             ("Blumenau", -26.92, -49.07), ("São José", -27.61, -48.63),
             ("Itajaí", -26.91, -48.66), ("Chapecó", -27.10, -52.62))),
    State("BA", "Bahia", 3.40, 0.6, (71, 73, 74, 75, 77), (40000, 48999),
          (-18.35, -8.50, -46.65, -37.30),
          _c(("Salvador", -12.97, -38.50), ("Feira de Santana", -12.27, -38.97),
             ("Vitória da Conquista", -14.87, -40.84), ("Camaçari", -12.70, -38.32),
             ("Itabuna", -14.79, -39.28), ("Juazeiro", -9.41, -40.50))),
    State("DF", "Distrito Federal", 2.15, 1.0, (61,), (70000, 72799),
          (-16.05, -15.50, -48.30, -47.30),
          _c(("Brasília", -15.79, -47.88), ("Taguatinga", -15.83, -48.06),
             ("Ceilândia", -15.82, -48.11), ("Águas Claras", -15.84, -48.03),
             ("Gama", -16.01, -48.06))),
    State("ES", "Espírito Santo", 2.04, 0.7, (27, 28), (29000, 29999),
          (-21.30, -17.90, -41.90, -39.65),
          _c(("Vitória", -20.32, -40.34), ("Vila Velha", -20.33, -40.29),
             ("Serra", -20.13, -40.31), ("Cariacica", -20.26, -40.42),
             ("Cachoeiro de Itapemirim", -20.85, -41.11), ("Linhares", -19.39, -40.07))),
    State("GO", "Goiás", 2.03, 1.3, (62, 64), (72800, 76799),
          (-19.50, -12.40, -53.25, -45.90),
          _c(("Goiânia", -16.68, -49.25), ("Aparecida de Goiânia", -16.82, -49.24),
             ("Anápolis", -16.33, -48.95), ("Rio Verde", -17.80, -50.93),
             ("Luziânia", -16.25, -47.95))),
    State("PE", "Pernambuco", 1.66, 0.3, (81, 87), (50000, 56999),
          (-9.50, -7.30, -41.35, -34.80),
          _c(("Recife", -8.05, -34.88), ("Jaboatão dos Guararapes", -8.11, -35.01),
             ("Olinda", -8.01, -34.85), ("Caruaru", -8.28, -35.98),
             ("Petrolina", -9.39, -40.50), ("Paulista", -7.94, -34.87))),
    State("CE", "Ceará", 1.34, 0.4, (85, 88), (60000, 63999),
          (-7.90, -2.75, -41.45, -37.25),
          _c(("Fortaleza", -3.73, -38.52), ("Caucaia", -3.74, -38.65),
             ("Juazeiro do Norte", -7.21, -39.32), ("Maracanaú", -3.88, -38.63),
             ("Sobral", -3.69, -40.35))),
    State("PA", "Pará", 0.98, 0.05, (91, 93, 94), (66000, 68899),
          (-9.85, 2.60, -58.90, -46.05),
          _c(("Belém", -1.46, -48.49), ("Ananindeua", -1.37, -48.37),
             ("Santarém", -2.44, -54.71), ("Marabá", -5.37, -49.12),
             ("Castanhal", -1.30, -47.93))),
    State("MT", "Mato Grosso", 0.91, 0.15, (65, 66), (78000, 78899),
          (-18.05, -7.35, -61.65, -50.20),
          _c(("Cuiabá", -15.60, -56.10), ("Várzea Grande", -15.65, -56.13),
             ("Rondonópolis", -16.47, -54.64), ("Sinop", -11.86, -55.51),
             ("Tangará da Serra", -14.62, -57.49))),
    State("MA", "Maranhão", 0.75, 0.05, (98, 99), (65000, 65999),
          (-10.30, -1.05, -48.75, -41.80),
          _c(("São Luís", -2.53, -44.30), ("Imperatriz", -5.53, -47.49),
             ("Caxias", -4.86, -43.36), ("Timon", -5.09, -42.84), ("Codó", -4.46, -43.89))),
    State("MS", "Mato Grosso do Sul", 0.72, 0.15, (67,), (79000, 79999),
          (-24.10, -17.15, -58.20, -50.90),
          _c(("Campo Grande", -20.44, -54.65), ("Dourados", -22.22, -54.81),
             ("Três Lagoas", -20.75, -51.68), ("Corumbá", -19.01, -57.65),
             ("Ponta Porã", -22.54, -55.73))),
    State("PB", "Paraíba", 0.54, 0.2, (83,), (58000, 58999),
          (-8.30, -6.00, -38.80, -34.75),
          _c(("João Pessoa", -7.12, -34.86), ("Campina Grande", -7.23, -35.88),
             ("Santa Rita", -7.11, -34.98), ("Patos", -7.02, -37.28),
             ("Bayeux", -7.13, -34.93))),
    State("PI", "Piauí", 0.50, 0.05, (86, 89), (64000, 64999),
          (-10.95, -2.75, -45.95, -40.35),
          _c(("Teresina", -5.09, -42.80), ("Parnaíba", -2.90, -41.78),
             ("Picos", -7.08, -41.47), ("Piripiri", -4.27, -41.78),
             ("Floriano", -6.77, -43.02))),
    State("RN", "Rio Grande do Norte", 0.49, 0.15, (84,), (59000, 59999),
          (-6.99, -4.80, -38.60, -34.95),
          _c(("Natal", -5.79, -35.21), ("Mossoró", -5.19, -37.34),
             ("Parnamirim", -5.92, -35.26), ("São Gonçalo do Amarante", -5.79, -35.33),
             ("Caicó", -6.46, -37.10))),
    State("AL", "Alagoas", 0.41, 0.03, (82,), (57000, 57999),
          (-10.50, -8.80, -38.25, -35.15),
          _c(("Maceió", -9.67, -35.74), ("Arapiraca", -9.75, -36.66),
             ("Rio Largo", -9.48, -35.85), ("Palmeira dos Índios", -9.41, -36.63),
             ("Penedo", -10.29, -36.58))),
    State("SE", "Sergipe", 0.35, 0.07, (79,), (49000, 49999),
          (-11.60, -9.50, -38.25, -36.40),
          _c(("Aracaju", -10.91, -37.07), ("Nossa Senhora do Socorro", -10.85, -37.13),
             ("Lagarto", -10.92, -37.65), ("Itabaiana", -10.69, -37.43),
             ("Estância", -11.27, -37.44))),
    State("TO", "Tocantins", 0.28, 0.03, (63,), (77000, 77999),
          (-13.50, -5.15, -50.75, -45.70),
          _c(("Palmas", -10.18, -48.33), ("Araguaína", -7.19, -48.21),
             ("Gurupi", -11.73, -49.07), ("Porto Nacional", -10.71, -48.42),
             ("Paraíso do Tocantins", -10.18, -48.88))),
    State("RO", "Rondônia", 0.25, 0.07, (69,), (76800, 76999),
          (-13.70, -7.95, -66.80, -59.75),
          _c(("Porto Velho", -8.76, -63.90), ("Ji-Paraná", -10.88, -61.95),
             ("Ariquemes", -9.91, -63.04), ("Vilhena", -12.74, -60.15),
             ("Cacoal", -11.44, -61.45))),
    State("AM", "Amazonas", 0.15, 0.04, (92, 97), (69000, 69299),
          (-9.85, 2.25, -73.80, -56.10),
          _c(("Manaus", -3.12, -60.02), ("Parintins", -2.63, -56.74),
             ("Itacoatiara", -3.14, -58.44), ("Manacapuru", -3.30, -60.62),
             ("Coari", -4.08, -63.14))),
    State("AC", "Acre", 0.08, 0.03, (68,), (69900, 69999),
          (-11.15, -7.10, -74.00, -66.60),
          _c(("Rio Branco", -9.97, -67.81), ("Cruzeiro do Sul", -7.63, -72.67),
             ("Sena Madureira", -9.07, -68.66), ("Tarauacá", -8.16, -70.77))),
    State("AP", "Amapá", 0.07, 0.02, (96,), (68900, 68999),
          (-1.25, 4.45, -54.90, -49.85),
          _c(("Macapá", 0.03, -51.07), ("Santana", -0.06, -51.18),
             ("Laranjal do Jari", -0.80, -52.45), ("Oiapoque", 3.84, -51.83))),
    State("RR", "Roraima", 0.05, 0.02, (95,), (69300, 69399),
          (-1.60, 5.30, -64.85, -58.85),
          _c(("Boa Vista", 2.82, -60.67), ("Rorainópolis", 0.94, -60.44),
             ("Caracaraí", 1.82, -61.13), ("Pacaraima", 4.48, -61.15))),
)  # fmt: skip

UFS: tuple[str, ...] = tuple(s.uf for s in STATES)
STATE_BY_UF: dict[str, State] = {s.uf: s for s in STATES}


def ascii_fold(text: str) -> str:
    """``"São João"`` -> ``"sao joao"``: lowercase, accents stripped (Olist's city spelling)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def _normalized(weights: np.ndarray) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float64)
    return weights / weights.sum()


CUSTOMER_STATE_WEIGHTS: np.ndarray = _normalized([s.customer_weight for s in STATES])
SELLER_STATE_WEIGHTS: np.ndarray = _normalized([s.seller_weight for s in STATES])

# Flat city table: index = global city id.
CITY_STATE: np.ndarray = np.array(
    [i for i, s in enumerate(STATES) for _ in s.cities], dtype=np.int64
)
CITY_NAMES: tuple[str, ...] = tuple(c.name for s in STATES for c in s.cities)
CITY_NAMES_OLIST: tuple[str, ...] = tuple(ascii_fold(name) for name in CITY_NAMES)
CITY_LAT: np.ndarray = np.array([c.lat for s in STATES for c in s.cities])
CITY_LNG: np.ndarray = np.array([c.lng for s in STATES for c in s.cities])


def _city_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per city: upper edge of its sampling interval, and its zip-prefix block [lo, hi]."""
    edges, zip_lo, zip_hi = [], [], []
    for i, state in enumerate(STATES):
        k = len(state.cities)
        weights = 1.0 / np.arange(1, k + 1)  # capital first, then a Zipf tail
        cum = np.cumsum(weights / weights.sum())
        cum[-1] = 1.0
        edges.extend(i + cum)
        lo, hi = state.zip_range
        bounds = lo + ((hi - lo + 1) * np.arange(k + 1)) // k
        zip_lo.extend(bounds[:-1])
        zip_hi.extend(bounds[1:] - 1)
    return np.array(edges), np.array(zip_lo, np.int64), np.array(zip_hi, np.int64)


_CITY_EDGES, CITY_ZIP_LO, CITY_ZIP_HI = _city_tables()
STATE_BBOXES: np.ndarray = np.array([s.bbox for s in STATES])
_MAX_DDDS = max(len(s.ddds) for s in STATES)
_DDD_TABLE: np.ndarray = np.array(
    [list(s.ddds) + [s.ddds[0]] * (_MAX_DDDS - len(s.ddds)) for s in STATES], dtype=np.int64
)
_DDD_COUNT: np.ndarray = np.array([len(s.ddds) for s in STATES], dtype=np.int64)
_UF_SORTED = np.array(sorted(UFS))
_UF_SORTED_TO_INDEX = np.array([UFS.index(uf) for uf in _UF_SORTED], dtype=np.int64)


def state_indices(states: np.ndarray) -> np.ndarray:
    """Indices into ``STATES`` for an array of UF codes (integer arrays pass through)."""
    states = np.asarray(states)
    if np.issubdtype(states.dtype, np.integer):
        return states.astype(np.int64)
    pos = np.searchsorted(_UF_SORTED, states)
    pos = np.clip(pos, 0, len(_UF_SORTED) - 1)
    if not np.all(_UF_SORTED[pos] == states):
        raise ValueError("unknown UF code in input")
    return _UF_SORTED_TO_INDEX[pos]


def sample_states(rng: np.random.Generator, n: int, *, sellers: bool = False) -> np.ndarray:
    """``n`` state indices drawn with Olist's customer (or seller) shares."""
    weights = SELLER_STATE_WEIGHTS if sellers else CUSTOMER_STATE_WEIGHTS
    return rng.choice(len(STATES), size=n, p=weights).astype(np.int64)


def sample_cities(rng: np.random.Generator, states: np.ndarray) -> np.ndarray:
    """A global city index per person, inside the given state, capital most likely."""
    state_idx = state_indices(states)
    key = state_idx + rng.random(len(state_idx))
    return np.searchsorted(_CITY_EDGES, key, side="right").astype(np.int64)


def zip_prefix_numbers(rng: np.random.Generator, cities: np.ndarray) -> np.ndarray:
    """Integer 5-digit zip prefixes inside each city's block (denser at the block start)."""
    cities = np.asarray(cities, dtype=np.int64)
    lo, hi = CITY_ZIP_LO[cities], CITY_ZIP_HI[cities]
    span = hi - lo + 1
    offset = np.floor(span * rng.random(len(cities)) ** 2).astype(np.int64)
    return lo + np.minimum(offset, span - 1)


def format_zip_prefixes(numbers: np.ndarray) -> np.ndarray:
    """``1310`` -> ``"01310"``."""
    return np.char.zfill(np.asarray(numbers, dtype=np.int64).astype("U5"), 5)


def zip_prefixes(rng: np.random.Generator, cities: np.ndarray) -> np.ndarray:
    """Zip prefixes as 5-character text (``"01310"``), see :func:`zip_prefix_numbers`."""
    return format_zip_prefixes(zip_prefix_numbers(rng, cities))


def city_of_zip_prefix(numbers: np.ndarray) -> np.ndarray:
    """Global city index owning each integer zip prefix (-1 when outside every block)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    order = np.argsort(CITY_ZIP_LO, kind="stable")
    pos = np.searchsorted(CITY_ZIP_LO[order], numbers, side="right") - 1
    city = order[np.clip(pos, 0, None)]
    inside = (pos >= 0) & (numbers <= CITY_ZIP_HI[city])
    return np.where(inside, city, -1)


def coordinates(
    rng: np.random.Generator, cities: np.ndarray, spread: float = 0.08
) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude near each city, kept inside its state's bounding box."""
    cities = np.asarray(cities, dtype=np.int64)
    n = len(cities)
    box = STATE_BBOXES[CITY_STATE[cities]]
    lat = np.clip(CITY_LAT[cities] + rng.normal(0.0, spread, n), box[:, 0], box[:, 1])
    lng = np.clip(CITY_LNG[cities] + rng.normal(0.0, spread, n), box[:, 2], box[:, 3])
    return lat, lng


def state_bbox(uf: str) -> tuple[float, float, float, float]:
    """Rough bounding box of a state: ``(lat_min, lat_max, lng_min, lng_max)``."""
    return STATE_BY_UF[uf].bbox


# --------------------------------------------------------------------------------------------
# Fixed-width text built from byte matrices (fast: no per-row Python)

_ZERO = ord("0")


def _put_digits(matrix: np.ndarray, start: int, values: np.ndarray, width: int) -> None:
    values = np.asarray(values, dtype=np.int64)
    for k in range(width):
        matrix[:, start + width - 1 - k] = _ZERO + (values // 10**k) % 10


def _put_text(matrix: np.ndarray, start: int, text: str) -> None:
    for k, ch in enumerate(text.encode("ascii")):
        matrix[:, start + k] = ch


def _ascii_rows(matrix: np.ndarray) -> np.ndarray:
    """A ``(n, w)`` uint8 matrix of ASCII codes -> array of ``n`` str of width ``w``."""
    n, w = matrix.shape
    return np.ascontiguousarray(matrix).view(f"S{w}").reshape(n).astype(f"U{w}")


# --------------------------------------------------------------------------------------------
# CPF

_CPF_W1 = np.arange(10, 1, -1)  # 10..2 over the 9 base digits
_CPF_W2 = np.arange(11, 1, -1)  # 11..2 over the 9 digits and the first check digit
_REPDIGITS = tuple(k * 111_111_111 for k in range(10))


def _check_digit(total: np.ndarray) -> np.ndarray:
    rest = total % 11
    return np.where(rest < 2, 0, 11 - rest)


def cpf_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct CPFs with valid mod-11 check digits, as text ``123.456.789-09``.

    The 9 base digits are drawn without replacement and never all equal (such CPFs are
    invalid by rule even though their check digits work out).
    """
    # Draw among the 10**9 - 10 bases that are not repdigits (000000000, 111111111, ...),
    # then shift each value past the repdigits below it: distinct in, distinct out.
    base = rng.choice(10**9 - len(_REPDIGITS), size=n, replace=False).astype(np.int64)
    for rep in _REPDIGITS:
        base += base >= rep
    digits = (base[:, None] // 10 ** np.arange(8, -1, -1)) % 10
    d1 = _check_digit(digits @ _CPF_W1)
    d2 = _check_digit(digits @ _CPF_W2[:9] + d1 * _CPF_W2[9])
    out = np.empty((n, 14), dtype=np.uint8)
    _put_digits(out, 0, base // 1_000_000, 3)
    _put_text(out, 3, ".")
    _put_digits(out, 4, (base // 1000) % 1000, 3)
    _put_text(out, 7, ".")
    _put_digits(out, 8, base % 1000, 3)
    _put_text(out, 11, "-")
    _put_digits(out, 12, d1 * 10 + d2, 2)
    return _ascii_rows(out)


def is_valid_cpf(text: str) -> bool:
    """True for an 11-digit CPF (formatted or bare) whose two check digits are right."""
    if not isinstance(text, str):
        return False
    digits = text.replace(".", "").replace("-", "").strip()
    if len(digits) != 11 or not digits.isascii() or not digits.isdigit():
        return False
    if len(set(digits)) == 1:
        return False
    nums = [int(ch) for ch in digits]
    for size in (9, 10):
        total = sum(d * w for d, w in zip(nums[:size], range(size + 1, 1, -1), strict=True))
        rest = total % 11
        if nums[size] != (0 if rest < 2 else 11 - rest):
            return False
    return True


# --------------------------------------------------------------------------------------------
# Names, e-mails, phones, addresses


def _zipf(n: int, exponent: float) -> np.ndarray:
    return _normalized(1.0 / np.arange(1, n + 1) ** exponent)


_FIRST_P = np.concatenate(
    [_zipf(len(FEMALE_FIRST_NAMES), 0.6) / 2, _zipf(len(MALE_FIRST_NAMES), 0.6) / 2]
)
_SURNAME_P = _zipf(len(SURNAMES), 0.8)
_FIRST_ARR = np.array(FIRST_NAMES)
_SURNAME_ARR = np.array(SURNAMES)
_FIRST_ASCII = np.array([ascii_fold(n) for n in FIRST_NAMES])
_SURNAME_ASCII = np.array([ascii_fold(n) for n in SURNAMES])
_DOMAIN_ARR = np.array([d for d, _ in EMAIL_DOMAINS])
_DOMAIN_P = _normalized([w for _, w in EMAIL_DOMAINS])
_STREET_TYPE_ARR = np.array([t for t, _ in STREET_TYPES])
_STREET_TYPE_P = _normalized([w for _, w in STREET_TYPES])
_STREET_NAME_ARR = np.array(STREET_NAMES)


@dataclass(frozen=True)
class PersonNames:
    """Sampled names: indices into ``FIRST_NAMES``/``SURNAMES`` and the full name text.

    ``last`` is -1 when the person has a single surname.
    """

    first: np.ndarray
    middle: np.ndarray
    last: np.ndarray
    full: np.ndarray

    def __len__(self) -> int:
        return len(self.full)


def person_names(rng: np.random.Generator, n: int) -> PersonNames:
    """Full names such as ``"Ana Souza Lima"`` (two surnames for ~70 %, never repeated)."""
    first = rng.choice(len(FIRST_NAMES), size=n, p=_FIRST_P)
    middle = rng.choice(len(SURNAMES), size=n, p=_SURNAME_P)
    shift = rng.integers(1, len(SURNAMES), size=n)
    last = np.where(rng.random(n) < 0.7, (middle + shift) % len(SURNAMES), -1)
    full = np.strings.add(np.strings.add(_FIRST_ARR[first], " "), _SURNAME_ARR[middle])
    tail = np.strings.add(" ", _SURNAME_ARR[np.maximum(last, 0)])
    full = np.where(last >= 0, np.strings.add(full, tail), full)
    return PersonNames(first, middle, last, full)


def full_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """Just the full-name text of :func:`person_names`."""
    return person_names(rng, n).full


def emails(rng: np.random.Generator, names: PersonNames) -> np.ndarray:
    """E-mails derived from the names: ``ana.lima1987@gmail.com``, ``analima42@uol.com.br``.

    Lowercase ASCII (accents stripped) local part built from the first name and the last
    surname, always with a number, at common Brazilian providers.
    """
    n = len(names)
    first = _FIRST_ASCII[names.first]
    surname = _SURNAME_ASCII[np.where(names.last >= 0, names.last, names.middle)]
    pattern = rng.choice(5, size=n, p=[0.35, 0.25, 0.15, 0.15, 0.10])
    sep = np.array([".", "", "_", "", ""])[pattern]
    second = np.where(pattern == 3, "", surname)
    head = np.where(pattern == 4, np.strings.slice(first, 0, 1), first)
    year = rng.random(n) < 0.4
    number = np.where(year, rng.integers(1950, 2006, n), rng.integers(1, 1000, n))
    local = np.strings.add(np.strings.add(np.strings.add(head, sep), second), number.astype("U4"))
    domain = _DOMAIN_ARR[rng.choice(len(_DOMAIN_ARR), size=n, p=_DOMAIN_P)]
    return np.strings.add(np.strings.add(local, "@"), domain)


def phones(rng: np.random.Generator, states: np.ndarray) -> np.ndarray:
    """Mobile numbers ``+55 (DD) 9XXXX-XXXX`` with an area code (DDD) of each state."""
    state_idx = state_indices(states)
    n = len(state_idx)
    pick = (rng.random(n) * _DDD_COUNT[state_idx]).astype(np.int64)
    ddd = _DDD_TABLE[state_idx, pick]
    number = rng.integers(6000_0000, 10000_0000, size=n)  # mobiles start 96..99
    out = np.empty((n, 19), dtype=np.uint8)
    _put_text(out, 0, "+55 (")
    _put_digits(out, 5, ddd, 2)
    _put_text(out, 7, ") 9")
    _put_digits(out, 10, number // 10_000, 4)
    _put_text(out, 14, "-")
    _put_digits(out, 15, number % 10_000, 4)
    return _ascii_rows(out)


def ddd_of_phone(phone: str) -> int:
    """The area code of a phone formatted by :func:`phones`."""
    return int(phone[5:7])


def street_addresses(rng: np.random.Generator, n: int) -> np.ndarray:
    """``"Rua das Flores, 123"``; about a quarter add an apartment: ``", apto 12"``."""
    kind = _STREET_TYPE_ARR[rng.choice(len(_STREET_TYPE_ARR), size=n, p=_STREET_TYPE_P)]
    name = _STREET_NAME_ARR[rng.integers(0, len(_STREET_NAME_ARR), size=n)]
    number = np.clip(np.round(rng.lognormal(np.log(250), 1.1, n)), 1, 9999).astype(np.int64)
    flat = np.where(
        rng.random(n) < 0.5,
        rng.integers(1, 25, n) * 100 + rng.integers(1, 5, n),  # floor + unit: 101 .. 2404
        rng.integers(1, 99, n),
    )
    apto = np.strings.add(", apto ", flat.astype("U3"))
    street = np.strings.add(np.strings.add(np.strings.add(kind, " "), name), ", ")
    street = np.strings.add(street, number.astype("U4"))
    return np.where(rng.random(n) < 0.25, np.strings.add(street, apto), street)
