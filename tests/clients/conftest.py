"""Shared fixtures for the client-library tests: the upload transfer mode (classic LFS or Xet)."""

from __future__ import annotations

import importlib.util

import pytest


@pytest.fixture(params=[pytest.param("lfs", marks=pytest.mark.no_xet), pytest.param("xet", marks=pytest.mark.xet)])
def transfer(request, monkeypatch) -> str:
    """Run a flow with classic LFS uploads (HF_HUB_DISABLE_XET=1) and with the default Xet uploads."""
    from huggingface_hub import constants

    disabled = request.param == "lfs"
    if not disabled and importlib.util.find_spec("hf_xet") is None:
        pytest.skip("hf_xet is not installed")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", disabled)
    if disabled:
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    else:
        monkeypatch.delenv("HF_HUB_DISABLE_XET", raising=False)
    return request.param
