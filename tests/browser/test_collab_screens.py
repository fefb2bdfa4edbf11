"""Working together in headless Chromium: a comment with a mention, a saved draft; screenshots."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import screens
from app_support import SCREENSHOTS, make_test_app, serving

from webflow import db
from webflow.demo.purchase import PurchaseRequestFlow, PurchasingFlow
from webflow.models import Process, User

pytestmark = pytest.mark.browser
PERMS = ["purchase_request.view", "purchase_request.can_start", "purchase_request.can_review"]


@pytest.fixture
def purchase(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """The purchase demo served on 127.0.0.1, a request reviewed by alice and bob."""
    app = make_test_app(f"sqlite:///{tmp_path / 'c.sqlite'}", [PurchaseRequestFlow, PurchasingFlow],
                        {"alice": PERMS, "bob": PERMS}, "pw")
    with app.app_context():
        alice = db.session.scalar(db.select(User).where(User.username == "alice"))
        process: Process = PurchaseRequestFlow.start.run(
            data={"item": "Standing desks for the support team", "amount": 2400, "reviewers": "alice, bob"},
            user=alice)
        review = next(t for t in process.tasks if t.node_name == "review" and t.owner_id == alice.id)
        task_path = f"/flows/purchase_request/{process.id}/review/{review.id}/"
        db.session.remove()
    with serving(app) as url:
        yield url + task_path, url


def log_in(browser: Any, base: str, name: str) -> Any:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = screens.log_in(context, base, name, "pw")
    return page


def test_comment_with_a_mention_and_a_draft_that_comes_back(browser: Any, purchase: tuple[str, str]) -> None:
    task_url, base = purchase
    bob = log_in(browser, base, "bob")
    bob.goto(task_url)
    bob.fill("#comment-text", "@alice could we get the height-adjustable ones? <script>alert(1)</script>")
    bob.click("#task-history button:has-text('Post comment')")
    bob.wait_for_selector(".wf-comment .wf-mention")

    alice = log_in(browser, base, "alice")
    alice.goto(task_url)
    alice.evaluate("window.stayedOnPage = true")           # gone if the page reloads
    alice.fill("#comment-text", "Yes @bob, the quote already includes them.")
    alice.click("#task-history button:has-text('Post comment')")
    alice.wait_for_selector(".wf-comment >> nth=1")
    assert alice.evaluate("window.stayedOnPage") is True   # the history was swapped in place
    texts = alice.locator(".wf-comment-text").all_inner_texts()
    assert "<script>alert(1)</script>" in texts[0]          # shown as text, never run
    alice.locator("#task-history").screenshot(path=str(SCREENSHOTS / "comments.png"))

    alice.check("input[name=approved]")
    alice.fill("textarea[name=comment]", "Approved if the delivery is before the 15th; checking with")
    alice.click("#task-work button:has-text('Save draft')")
    alice.wait_for_selector(".wf-draft-note")
    alice.goto(task_url)                                    # come back later: the draft is there
    assert alice.is_checked("input[name=approved]")
    assert "checking with" in alice.input_value("textarea[name=comment]")
    assert "Draft saved" in alice.inner_text(".wf-draft-note")
    alice.locator("#task-work").screenshot(path=str(SCREENSHOTS / "draft.png"))

    bob.goto(task_url)                                      # bob sees the comments, not the draft
    assert "checking with" not in bob.content()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
