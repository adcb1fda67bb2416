"""`duplicate_repo(..., repo_type="space")` (issue 13 item 6): the copy gets the secrets, variables and sleep time
the request names, never the source's; a bad one is refused before anything is copied."""

from __future__ import annotations

import pytest
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError


def test_duplicated_space_gets_the_requests_secrets_not_the_sources(api, bob_api, bob, repo_factory) -> None:
    src = repo_factory("dup-vars", repo_type="space", space_sdk="static")
    api.add_space_secret(src, "SOURCE_SECRET", "not-for-copies")
    api.add_space_variable(src, "SOURCE_VAR", "src")
    name = src.split("/")[1]
    with pytest.raises(HfHubHTTPError) as err:  # a bad key: nothing is made
        bob_api.duplicate_repo(src, to_id=f"{bob.name}/{name}-bad", repo_type="space",
                               space_secrets=[{"key": "1 bad", "value": "v"}])
    assert err.value.response.status_code == 400
    with pytest.raises(RepositoryNotFoundError):
        bob_api.space_info(f"{bob.name}/{name}-bad")
    copy = bob_api.duplicate_repo(src, repo_type="space", space_sleep_time=3600,
                                  space_secrets=[{"key": "MY_KEY", "value": "v", "description": "mine"}],
                                  space_variables=[{"key": "MY_VAR", "value": "1"}]).repo_id
    try:
        secrets = bob_api.get_space_secrets(copy)
        assert set(secrets) == {"MY_KEY"} and secrets["MY_KEY"].description == "mine"
        variables = bob_api.get_space_variables(copy)
        assert set(variables) == {"MY_VAR"} and variables["MY_VAR"].value == "1"
        assert bob_api.get_space_runtime(copy).sleep_time == 3600
        bob_api.delete_space_secret(copy, "MY_KEY")
        bob_api.delete_space_variable(copy, "MY_VAR")
        assert bob_api.get_space_secrets(copy) == {} and bob_api.get_space_variables(copy) == {}
    finally:
        bob_api.delete_repo(copy, repo_type="space", missing_ok=True)
