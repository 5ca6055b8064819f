"""OS group and account names: POSIX-sized, deterministic, unique per (user, project)."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tre.errors import ConfigError
from tre.users import NAME_PATTERN
from tre.workspace import account_name, group_name

users = st.from_regex(NAME_PATTERN, fullmatch=True)
projects = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", fullmatch=True)
POSIX = r"[a-z_][a-z0-9_-]*"


@given(users, projects)
def test_account_names_fit_posix_and_are_stable(user, project):
    name = account_name("tre", user, project)
    assert len(name) <= 32
    assert re.fullmatch(POSIX, name)
    assert name == account_name("tre", user, project)


@given(projects)
def test_group_names_fit_posix(project):
    name = group_name("tre", project)
    assert len(name) <= 32 and re.fullmatch(POSIX, name)


def test_names_that_truncate_or_join_alike_stay_distinct():
    # "a-b" in "c" and "a" in "b-c" would both read tre-a-b-c without the hash
    assert account_name("tre", "a-b", "c") != account_name("tre", "a", "b-c")
    long_project = "diabetes-follow-up-after-discharge-2026"
    one, two = account_name("tre", "rita", long_project + "-a"), account_name("tre", "rita", long_project + "-b")
    assert one != two and len(one) <= 32 and len(two) <= 32
    assert account_name("tre", "rita", "alpha").startswith("tre-rita-alpha-")
    assert group_name("tre", "Alpha_1") != group_name("tre", "alpha-1")


@pytest.mark.parametrize("prefix", ["", "toolong", "Tre", "t1"])
def test_prefix_must_be_short_lowercase_letters(prefix):
    with pytest.raises(ConfigError, match="os_account_prefix"):
        account_name(prefix, "rita", "alpha")
