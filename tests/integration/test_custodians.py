"""§ 5-2: key custodians check what an admin asks for, so the admin may not appoint them.

The installation's first key custodian is appointed by its admin (someone has to be first;
audited); after that only an active key custodian appoints another, no one appoints
themselves, and admin and key custodian are never the same person.
"""

from __future__ import annotations


def test_only_the_first_key_custodian_is_appointed_by_the_admin(initialised):
    cli = initialised
    first = cli.ok("user", "add", "kari", "--role", "custodian", as_user="ada")
    assert "added role custodian" in first.out

    second = cli("user", "add", "mallory", "--role", "custodian", as_user="ada")
    assert second.code == 5 and "granted by a key custodian" in second.err and "Traceback" not in second.err
    assert "mallory" not in cli.ok("user", "list", as_user="ada").out

    cli.ok("user", "add", "karl", "--role", "custodian", as_user="kari")  # a custodian appoints the next
    assert cli("user", "add", "olav", "--role", "officer", as_user="kari").code == 5  # and nothing else


def test_no_one_holds_both_roles_or_appoints_themselves(initialised):
    cli = initialised
    cli.ok("user", "add", "kari", "--role", "custodian", as_user="ada")
    refused = cli("user", "add", "ada", "--role", "custodian", as_user="ada")
    assert refused.code == 5 and "separate people" in refused.err
    assert cli("user", "add", "kari", "--role", "admin", as_user="ada").code == 5
    cli.ok("user", "add", "kari", "--role", "researcher", as_user="ada")  # other roles stay the admin's to grant
    assert cli("user", "add", "kari", "--role", "custodian", as_user="kari").out  # already held: nothing changes
    denied = cli.ok("audit", "log", "--action", "access.denied", "--json", as_user="ada").json()
    assert len(denied) == 2


def test_revoking_every_custodian_does_not_make_the_next_appointment_the_first(initialised):
    cli = initialised
    cli.ok("user", "add", "kari", "--role", "custodian", as_user="ada")
    cli.ok("user", "add", "olga", "--role", "researcher", as_user="ada")
    cli.ok("user", "revoke", "kari", "--role", "custodian", as_user="ada")
    again = cli("user", "add", "mallory", "--role", "custodian", as_user="ada")
    assert again.code == 5 and "granted by a key custodian" in again.err
