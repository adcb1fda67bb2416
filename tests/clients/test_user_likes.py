"""`list_liked_repos` (`/api/users/{user}/likes`) with the stock client: filtered by visibility in SQL (a private
repo the caller cannot read is missing) and ordered as the web profile orders them, newest like first."""

from __future__ import annotations

import httpx

from tests.conftest import ENDPOINT


def test_likes_listing_is_newest_first_and_hides_what_the_caller_cannot_read(api, bob_api, anon_api, alice,
                                                                              repo_factory) -> None:
    first = repo_factory("liked-a")
    hidden = repo_factory("liked-p", private=True)
    data = repo_factory("liked-d", repo_type="dataset")
    last = repo_factory("liked-b")
    for repo_id, plural in ((first, "models"), (data, "datasets"), (hidden, "models"), (last, "models")):
        r = httpx.post(f"{ENDPOINT}/api/{plural}/{repo_id}/like",  # huggingface_hub has unlike() but no like()
                       headers={"authorization": f"Bearer {alice.token}"})
        assert r.status_code == 200, r.text

    def mine(likes, made: set[str]) -> list[str]:
        return [r for r in likes.models if r in made]

    made = {first, hidden, last}
    own = api.list_liked_repos("alice")
    assert mine(own, made) == [last, hidden, first]
    assert data in own.datasets
    for other in (bob_api, anon_api):
        seen = other.list_liked_repos("alice")
        assert mine(seen, made) == [last, first]  # the private one is missing, as if never liked
        assert data in seen.datasets
