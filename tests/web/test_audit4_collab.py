"""Working together at its edges (audit 4): what a demanding user or an attacker sends to
the collaboration pages is refused with a reason and changes nothing, and what the pages
say is what happens."""

from __future__ import annotations

import pytest
from web_support import user

from webflow import db

# -- notification settings: an address the mailer can send to -------------------------------

#: Addresses the settings form took ("Notification settings saved") that no mail could
#: ever go to: the mailer refused each one at every attempt, five times, and the person
#: was never told. A DEL went into the stored address too.
UNSENDABLE = ["bob@example..com", "bob@.example.com", "bob@example.com.",
              "bob@" + "b" * 64 + ".com", "bob@ex\x7fample.com", "bob@exa\x1fmple.com"]


@pytest.mark.parametrize("address", UNSENDABLE, ids=["double-dot", "leading-dot", "trailing-dot",
                                                     "long-label", "del", "control"])
def test_an_address_no_mail_can_go_to_is_refused(app, people, address: str) -> None:  # type: ignore[no-untyped-def]
    bob = people("bob")
    bob.get("/settings/")
    response = bob.post("/settings/notifications", {"email": address, "assigned": "y"})
    assert response.status_code == 422, response.status_code
    assert "like name@example.com" in response.get_data(as_text=True)
    db.session.expire_all()
    assert user("bob").email in (None, "")


def test_an_ordinary_or_international_address_is_still_taken(app, people) -> None:  # type: ignore[no-untyped-def]
    bob = people("bob")
    bob.get("/settings/")
    for address in ("bob.smith+work@example.com", "bob@ex\u00e4mple.co.uk", "bob@b"):
        assert bob.post("/settings/notifications", {"email": address}).status_code == 303, address
        db.session.expire_all()
        assert user("bob").email == address
