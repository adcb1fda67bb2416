from __future__ import annotations

import time

import pytest

from cove.errors import RangeNotSatisfiable
from cove.services.xet import FetchTarget, parse_fetch_ranges, parse_range
from cove.xet import tokens

SECRET = "s" * 32


def _claims(**kw) -> tokens.XetClaims:
    base = dict(
        scope="read",
        repo_type="model",
        repo_id="a/b",
        repo_pk=1,
        rev="main",
        user="a",
        exp=int(time.time()) + 60,
    )
    return tokens.XetClaims(**{**base, **kw})


def test_token_roundtrip_and_tamper() -> None:
    tok = tokens.sign_token(SECRET, _claims(scope="write"))
    claims = tokens.verify_token(SECRET, tok)
    assert claims.can_write and claims.repo_id == "a/b"
    with pytest.raises(tokens.TokenError):
        tokens.verify_token("other" * 8, tok)
    head, payload, mac = tok.split(".")
    forged = tokens.sign_token(SECRET, _claims(repo_id="x/y")).split(".")[1]
    with pytest.raises(tokens.TokenError, match="signature"):
        tokens.verify_token(SECRET, f"{head}.{forged}.{mac}")
    for bad in ("", "abc", "cx1.a.b", "x" * 5000, tok + "x"):
        with pytest.raises(tokens.TokenError):
            tokens.verify_token(SECRET, bad)


def test_token_expiry() -> None:
    tok = tokens.sign_token(SECRET, _claims(exp=100))
    with pytest.raises(tokens.TokenError) as info:
        tokens.verify_token(SECRET, tok)
    assert info.value.expired
    assert tokens.verify_token(SECRET, tok, now=99).exp == 100


def test_fetch_signature() -> None:
    h = "ab" * 32
    exp = int(time.time()) + 60
    sig = tokens.fetch_signature(SECRET, h, 0, 99, exp)
    assert tokens.check_fetch_signature(SECRET, h, 0, 99, exp, sig)
    assert not tokens.check_fetch_signature(SECRET, h, 0, 100, exp, sig)
    assert not tokens.check_fetch_signature(SECRET, h, 0, 99, exp + 1, sig)
    assert not tokens.check_fetch_signature(SECRET, h, 0, 99, exp, sig, now=exp)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, (0, 100)),
        ("bytes=0-99", (0, 100)),
        ("bytes=10-", (10, 100)),
        ("bytes=-10", (90, 100)),
        ("bytes=5-500", (5, 100)),
        ("bytes=99-99", (99, 100)),
    ],
)
def test_parse_range(header, expected) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=5-2", "bytes=a-b", "items=0-1", "bytes=0-1,3-4", "bytes=-0"])
def test_parse_range_unsatisfiable(header) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 100)


def test_fetch_ranges_stay_in_window() -> None:
    target = FetchTarget("xorbs/x", None, 100, 199, 1000)
    assert parse_fetch_ranges(None, target) == [(100, 199)]
    assert parse_fetch_ranges("bytes=100-109,150-199", target) == [(100, 109), (150, 199)]
    for bad in ("bytes=99-120", "bytes=150-200", "bytes=0-1000", "bytes=120-110", "bytes=150-"):
        with pytest.raises(RangeNotSatisfiable):
            parse_fetch_ranges(bad, target)
