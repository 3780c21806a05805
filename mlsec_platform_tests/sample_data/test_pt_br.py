"""pt_BR reference data and the vectorized personal-data generators."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mlsec_platform.sample_data import pt_br

N = 5_000


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def test_reference_lists_are_sizeable_and_distinct():
    assert len(pt_br.FIRST_NAMES) >= 140
    assert len(set(pt_br.FIRST_NAMES)) == len(pt_br.FIRST_NAMES)
    assert len(pt_br.SURNAMES) >= 100
    assert len(set(pt_br.SURNAMES)) == len(pt_br.SURNAMES)
    assert len(pt_br.STATES) == 27
    assert len(set(pt_br.UFS)) == 27
    assert {t for t, _ in pt_br.STREET_TYPES} == {"Rua", "Avenida", "Travessa", "Alameda"}


def test_states_are_consistent():
    assert pt_br.UFS[:3] == ("SP", "RJ", "MG")
    assert pt_br.CUSTOMER_STATE_WEIGHTS.sum() == pytest.approx(1.0)
    assert pt_br.CUSTOMER_STATE_WEIGHTS[0] == pytest.approx(0.42, abs=0.01)
    ddds = [d for s in pt_br.STATES for d in s.ddds]
    assert len(ddds) == len(set(ddds)), "an area code belongs to one state"
    assert set(ddds) <= set(range(11, 100))
    ranges = sorted(s.zip_range for s in pt_br.STATES)
    for (_, hi), (lo, _) in zip(ranges, ranges[1:], strict=False):
        assert hi < lo, "zip-prefix ranges do not overlap"
    assert pt_br.STATE_BY_UF["SP"].zip_range == (1000, 19999)
    assert pt_br.STATE_BY_UF["RJ"].zip_range == (20000, 28999)
    assert pt_br.STATE_BY_UF["MG"].zip_range == (30000, 39999)
    for state in pt_br.STATES:
        lat_min, lat_max, lng_min, lng_max = state.bbox
        assert -34 < lat_min < lat_max < 5.5 and -74.5 < lng_min < lng_max < -34.5
        for city in state.cities:
            assert lat_min <= city.lat <= lat_max, (state.uf, city)
            assert lng_min <= city.lng <= lng_max, (state.uf, city)


def test_known_and_corrupted_cpfs():
    assert pt_br.is_valid_cpf("529.982.247-25")
    assert pt_br.is_valid_cpf("52998224725")
    assert not pt_br.is_valid_cpf("529.982.247-26")  # corrupted check digit
    assert not pt_br.is_valid_cpf("529.982.248-25")  # corrupted base digit
    assert not pt_br.is_valid_cpf("111.111.111-11")  # all equal: check digits fit, still invalid
    assert not pt_br.is_valid_cpf("000.000.000-00")
    assert not pt_br.is_valid_cpf("529.982.247-2")
    assert not pt_br.is_valid_cpf("abc.def.ghi-jk")
    assert not pt_br.is_valid_cpf(None)  # type: ignore[arg-type]


def test_generated_cpfs_are_valid_distinct_and_formatted(rng):
    cpfs = pt_br.cpf_numbers(rng, N)
    assert len(cpfs) == N
    assert len(set(cpfs.tolist())) == N
    pattern = re.compile(r"^\d{3}\.\d{3}\.\d{3}-\d{2}$")
    for cpf in cpfs.tolist():
        assert pattern.match(cpf), cpf
        assert pt_br.is_valid_cpf(cpf), cpf
        corrupted = cpf[:-1] + str((int(cpf[-1]) + 1) % 10)
        assert not pt_br.is_valid_cpf(corrupted)


def test_cpf_generation_is_deterministic():
    one = pt_br.cpf_numbers(np.random.default_rng(1), 100)
    two = pt_br.cpf_numbers(np.random.default_rng(1), 100)
    other = pt_br.cpf_numbers(np.random.default_rng(2), 100)
    assert one.tolist() == two.tolist()
    assert one.tolist() != other.tolist()


def test_names_and_emails(rng):
    names = pt_br.person_names(rng, N)
    emails = pt_br.emails(rng, names)
    assert len(names) == N and len(emails) == N
    first_names = set(pt_br.FIRST_NAMES)
    surnames = set(pt_br.SURNAMES)
    email = re.compile(r"^[a-z_.]+[0-9]+@[a-z.]+$")
    domains = {d for d, _ in pt_br.EMAIL_DOMAINS}
    for full, address, first in zip(
        names.full.tolist(), emails.tolist(), names.first.tolist(), strict=True
    ):
        parts = full.split(" ")
        assert parts[0] in first_names and 2 <= len(parts) <= 3
        assert all(p in surnames for p in parts[1:])
        assert len(set(parts[1:])) == len(parts) - 1, "no repeated surname"
        assert email.match(address), address
        local, domain = address.split("@")
        assert domain in domains
        assert local.isascii()
        # derived from the name: starts with the first name (or its initial), accents folded
        folded = pt_br.ascii_fold(pt_br.FIRST_NAMES[first])
        assert local.startswith(folded) or local[0] == folded[0]
    assert {e.split("@")[1] for e in emails.tolist()} == domains


def test_ascii_fold():
    assert pt_br.ascii_fold("São João") == "sao joao"
    assert pt_br.ascii_fold("Conceição Araújo") == "conceicao araujo"


def test_phones_use_the_state_area_code(rng):
    states = pt_br.sample_states(rng, N)
    phones = pt_br.phones(rng, states)
    pattern = re.compile(r"^\+55 \(\d{2}\) 9\d{4}-\d{4}$")
    for state, phone in zip(states.tolist(), phones.tolist(), strict=True):
        assert pattern.match(phone), phone
        assert pt_br.ddd_of_phone(phone) in pt_br.STATES[state].ddds
    by_code = pt_br.phones(rng, np.array(["SP", "DF", "AC"]))
    assert [pt_br.ddd_of_phone(p) for p in by_code.tolist()][1:] == [61, 68]


def test_state_indices_rejects_unknown_codes():
    assert pt_br.state_indices(np.array(["RJ", "SP"])).tolist() == [1, 0]
    with pytest.raises(ValueError):
        pt_br.state_indices(np.array(["XX"]))


def test_street_addresses(rng):
    addresses = pt_br.street_addresses(rng, N).tolist()
    pattern = re.compile(r"^(Rua|Avenida|Travessa|Alameda) .+, \d{1,4}(, apto \d{1,4})?$")
    assert all(pattern.match(a) for a in addresses), [a for a in addresses if not pattern.match(a)]
    with_flat = sum(", apto " in a for a in addresses) / N
    assert 0.15 < with_flat < 0.35
    assert "Rua" in {a.split(" ")[0] for a in addresses}


def test_state_weights_and_cities(rng):
    states = pt_br.sample_states(rng, 50_000)
    share = np.bincount(states, minlength=27) / len(states)
    assert share[pt_br.UFS.index("SP")] == pytest.approx(0.42, abs=0.015)
    assert share[pt_br.UFS.index("RJ")] == pytest.approx(0.13, abs=0.01)
    cities = pt_br.sample_cities(rng, states)
    assert (pt_br.CITY_STATE[cities] == states).all()
    sp = cities[states == 0]
    capital = np.count_nonzero(sp == 0) / len(sp)
    assert capital == np.bincount(sp).max() / len(sp), "the capital is the most common city"
    zips = pt_br.zip_prefix_numbers(rng, cities)
    assert (pt_br.city_of_zip_prefix(zips) == cities).all()
    for state in range(27):
        lo, hi = pt_br.STATES[state].zip_range
        mine = zips[states == state]
        assert ((mine >= lo) & (mine <= hi)).all()
    text = pt_br.format_zip_prefixes(np.array([1310, 20040, 99999]))
    assert text.tolist() == ["01310", "20040", "99999"]


def test_coordinates_stay_in_the_state(rng):
    cities = np.repeat(np.arange(len(pt_br.CITY_NAMES)), 50)
    lat, lng = pt_br.coordinates(rng, cities, spread=0.5)
    box = pt_br.STATE_BBOXES[pt_br.CITY_STATE[cities]]
    assert ((lat >= box[:, 0]) & (lat <= box[:, 1])).all()
    assert ((lng >= box[:, 2]) & (lng <= box[:, 3])).all()
