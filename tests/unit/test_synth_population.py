"""The synthetic population: municipalities, ID numbers, ID changes, life events."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tre.idnumbers import generate_synthetic, validate_array
from tre.registers import municipalities
from tre.synth.iplos import pseudonym_strings
from tre.synth.population import (
    ID_CHANGE_REASONS,
    NEVER,
    allocate_municipalities,
    build_population,
    calibrated,
    id_strings,
    mortality,
    year_bounds,
)

POPULATIONS = np.array([m.population for m in municipalities()])


@pytest.mark.parametrize("persons", [357, 1000, 20_000])
def test_every_municipality_gets_someone_from_357_persons(persons):
    counts = np.bincount(allocate_municipalities(np.random.default_rng(1), persons), minlength=357)
    assert counts.sum() == persons and counts.min() >= 1
    utsira = [m.number for m in municipalities()].index("1151")
    assert counts[utsira] >= 1


def test_at_national_scale_every_municipality_has_its_real_population():
    counts = np.bincount(allocate_municipalities(np.random.default_rng(1), 5_550_203), minlength=357)
    assert (counts == POPULATIONS).all()


def test_fewer_persons_than_municipalities_still_counts_right():
    assert len(allocate_municipalities(np.random.default_rng(1), 50)) == 50


def test_deaths_rise_steeply_with_age():
    ages = np.array([1.0, 30, 50, 70, 80, 90, 100])
    for male in (True, False):
        q = mortality(ages, np.full(len(ages), male))
        assert (np.diff(q[1:]) > 0).all() and q[-1] <= 0.6 and q[4] > 10 * q[2]
    assert mortality(np.array([80.0]), np.array([True]))[0] > mortality(np.array([80.0]), np.array([False]))[0]


def test_calibrated_chances_add_up_within_the_cap():
    weight = np.array([0.1, 1.0, 10.0, 100.0])
    chance = calibrated(weight, 2.0, cap=0.9)
    assert chance.max() <= 0.9 and abs(chance.sum() - 2.0) < 1e-6
    assert (np.diff(chance) >= 0).all()


@pytest.fixture(scope="module")
def pop():
    return build_population(np.random.default_rng(5), 20_000, 2021, 2024, ghosts=500)


def test_id_numbers_are_unique_valid_and_synthetic(pop):
    first, after = pop.id_keys[: pop.size], pop.id_keys[pop.size :]
    everyone = np.unique(np.r_[first, after[pop.id_reason >= 0], pop.ghost_keys])
    assert len(everyone) == pop.size + (pop.id_reason >= 0).sum() + len(pop.ghost_keys)
    strings = np.array(id_strings(everyone).to_pylist())
    check = validate_array(strings)
    assert check["valid"].all() and check["synthetic"].all()


def test_id_changes_keep_birth_date_and_sex(pop):
    changed = np.flatnonzero(pop.id_reason >= 0)
    old = validate_array(np.array(pop.ids.take(changed).to_pylist()))
    new = validate_array(np.array(pop.ids.take(changed + pop.size).to_pylist()))
    assert (old["birth_date"] == new["birth_date"]).all() and (old["sex"] == new["sex"]).all()
    d_to_fnr = pop.id_reason[changed] == ID_CHANGE_REASONS.index("d_to_fnr")
    assert (old["kind"][d_to_fnr] == "d").all() and (new["kind"] == "fnr").all()
    assert d_to_fnr.sum() > 0 and (~d_to_fnr).sum() > 0
    # A D-number becomes an FNR only after the person arrived, and while they are still here.
    assert (pop.id_change[changed] > pop.entry[changed]).all()
    assert (pop.id_change[changed] <= pop.exit[changed]).all()


def test_births_immigration_and_exits_fall_in_the_period(pop):
    start, _ = year_bounds(2021)
    _, end = year_bounds(2024)
    newcomers = np.arange(pop.first_residents, pop.size)
    assert ((pop.entry[newcomers] >= start) & (pop.entry[newcomers] <= end)).all()
    born_here = newcomers[pop.immigration[newcomers] == NEVER]
    assert (pop.birth[born_here] == pop.entry[born_here]).all()
    left = pop.exit != NEVER
    assert ((pop.exit[left] >= start) & (pop.exit[left] <= end)).all()
    assert not ((pop.death != NEVER) & (pop.emigration != NEVER)).any()
    per_year = left.sum() / 4 / pop.first_residents
    assert 0.009 < per_year < 0.02  # deaths ~0.8 %, emigration ~0.5 %


def test_municipality_is_known_every_year_a_person_is_registered(pop):
    for year in pop.years:
        first, last = pop.window(slice(None), year)
        registered = first <= last
        assert (pop.municipality[year - pop.first_year][registered] >= 0).all()


def test_historic_pseudonyms_are_unique_opaque_and_seed_dependent():
    people = np.arange(100_000)
    one = pseudonym_strings(people, 12345).to_pylist()
    assert len(set(one)) == len(one) and all(len(p) == 16 and int(p, 16) >= 0 for p in one[:100])
    assert pseudonym_strings(people[:10], 999).to_pylist() != one[:10]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, 0.01, 0.1, 0.45, 1.0, 3.0]) | st.floats(0, 50), min_size=0, max_size=60),
    st.floats(0, 1.2),
    st.sampled_from([0.5, 0.9, 0.95]),
)
def test_calibrated_chances_exist_for_any_weights_and_any_expected_count(weights, share, cap):
    """Zero expected (a small population whose recipients already make up the share), ties,
    zero weights: chances always come out, within the cap, adding up to what can be reached."""
    weight = np.array(weights)
    positive = np.count_nonzero(weight)
    expected = share * cap * positive
    chance = calibrated(weight, expected, cap=cap)
    assert chance.shape == weight.shape
    assert (chance >= 0).all() and (chance <= cap + 1e-9).all()
    assert (chance[weight == 0] == 0).all()
    assert abs(chance.sum() - min(expected, cap * positive)) < 1e-6 * max(1.0, expected)
    order = np.argsort(weight, kind="stable")
    assert (np.diff(chance[order]) >= -1e-12).all()  # a larger weight never gets a smaller chance


def test_no_synthetic_numbers_for_nobody():
    numbers = generate_synthetic(np.random.default_rng(1), np.array([], dtype="datetime64[D]"), np.array([]))
    assert numbers.shape == (0,)
