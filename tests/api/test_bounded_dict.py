"""`cove.bounded.BoundedDict`: the answer caches' store drops its oldest entry when full, not all of them."""

import threading

from cove.api.files import HeadCache
from cove.bounded import BoundedDict


def test_full_drops_the_oldest_only():
    d = BoundedDict(3)
    for i in range(5):
        d.put(i, str(i))
    assert d == {2: "2", 3: "3", 4: "4"}
    d.put(3, "again")  # a key already there takes no one's place
    assert d == {2: "2", 3: "again", 4: "4"}
    d.clear()
    d.put("a", 1)
    assert d == {"a": 1}


def test_a_byte_budget_drops_the_oldest_and_keeps_nothing_larger():
    d = BoundedDict(100, max_bytes=10)
    for i in range(4):
        d.put(i, str(i), size=4)
    assert d == {2: "2", 3: "3"} and d.bytes == 8
    d.put(3, "three", size=6)  # replacing an entry counts its new size only
    assert d == {2: "2", 3: "three"} and d.bytes == 10
    d.put(4, "4", size=1)
    assert d == {3: "three", 4: "4"} and d.bytes == 7
    d.put("huge", "x", size=11)  # over the whole budget: not kept, nothing dropped for it
    assert d == {3: "three", 4: "4"} and d.bytes == 7
    d.clear()
    assert d.bytes == 0


def test_concurrent_puts_stay_bounded():
    d = BoundedDict(50)

    def fill(base: int) -> None:
        for i in range(2000):
            d.put((base, i), i, size=1)
            if i % 500 == 0:
                d.clear()

    threads = [threading.Thread(target=fill, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 0 < len(d) <= 50 and d.bytes == len(d)


def test_request_key_is_public():
    scope = {"path": "/m/a/resolve/main/x", "raw_path": b"/m/a/resolve/main/x", "query_string": b"",
             "headers": [(b"authorization", b"Bearer t")]}
    assert HeadCache.request_key(scope) == ("/m/a/resolve/main/x", b"", b"Bearer t")
    assert HeadCache.request_key({**scope, "headers": [(b"cookie", b"s=1")]}) is None
    assert HeadCache.request_key({**scope, "raw_path": b"/m/a/resolve/main/%78"}) is None
