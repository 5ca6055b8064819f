import re

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tre.linkage import pseudonyms

SHAPE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{12}$")


def as_map(table):
    return dict(zip(table.column("pid").to_pylist(), table.column("pseudonym").to_pylist(), strict=True))


pid_lists = st.lists(st.text(alphabet="0123456789abcdef", min_size=8, max_size=8), min_size=1, max_size=40, unique=True)


@settings(max_examples=15, deadline=None)
@given(first=pid_lists, second=pid_lists)
def test_stable_per_project_and_different_across_projects(tmp_path_factory, first, second):
    central = tmp_path_factory.mktemp("central")
    a1 = as_map(pseudonyms.assign(central, "alpha", np.array(first)))
    a2 = as_map(pseudonyms.assign(central, "alpha", np.array(second + first)))
    b = as_map(pseudonyms.assign(central, "beta", np.array(first)))
    assert set(a1) == set(first) and set(a2) == set(first) | set(second)
    assert all(a2[pid] == a1[pid] for pid in first)  # a rebuild keeps every pseudonym
    assert len(set(a2.values())) == len(a2)  # unique within the project
    assert all(SHAPE.match(p) for p in a2.values())
    assert not set(a1.values()) & set(b.values())  # another project: other pseudonyms
    assert all(a1[pid] not in pid for pid in first)


def test_key_table_is_private_and_purged(tmp_path):
    pseudonyms.assign(tmp_path, "gamma", np.array(["p1", "p2"]))
    path = pseudonyms.key_table_path(tmp_path, "gamma")
    assert path.stat().st_mode & 0o077 == 0
    assert pseudonyms.purge(tmp_path, "gamma") and not path.exists()
    again = as_map(pseudonyms.assign(tmp_path, "gamma", np.array(["p1"])))
    assert len(again) == 1


def test_random_pseudonyms_use_the_whole_alphabet():
    drawn = "".join(pseudonyms.random_pseudonyms(2000))
    assert set(drawn) == set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
