"""Issue 16 item 1: counted HEAD /resolve (config.json) against uncounted (tokenizer.json), same server, same run.

    python benchmarks/counted_heads.py [--seconds 4] [--repeats 3] [--connections 32] [--src OLD/src]

Target: counted >= 0.8x uncounted at c=32. Also measures uncounted HEADs with counted ones running beside
them (a second load at c=4). `--src` runs the server from another checkout (the code before the change).
Writes benchmarks/results/counted-heads[-LABEL].json.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
from pathlib import Path

from perf16_common import load_head_raw, loadavg, median, serve, stop, token_for, write_json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--src")
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    from huggingface_hub import HfApi

    data = Path(tempfile.mkdtemp(prefix="cove-bench16-")) / "data"
    data.mkdir(parents=True)
    token = token_for(data, "bench", src=a.src)
    proc, url, _ = serve(data, src=a.src)
    res: dict = {"connections": a.connections, "seconds": a.seconds, "src": a.src or "this checkout",
                 "loadavg_start": loadavg(), "runs": []}
    try:
        api = HfApi(endpoint=url, token=token)
        api.create_repo("bench/m")
        for name, body in (("config.json", b'{"model_type": "bert"}'), ("tokenizer.json", b"{}" * 100)):
            api.upload_file(path_or_fileobj=body, path_in_repo=name, repo_id="bench/m")
        counted, plain = f"{url}/bench/m/resolve/main/config.json", f"{url}/bench/m/resolve/main/tokenizer.json"
        load_head_raw(plain, {}, 4, 1)
        warm = load_head_raw(counted, {}, 4, 1)["requests"]
        for _ in range(a.repeats):  # interleaved
            run = {"uncounted": load_head_raw(plain, {}, a.connections, a.seconds),
                   "counted": load_head_raw(counted, {}, a.connections, a.seconds)}
            beside: dict = {}
            t = threading.Thread(target=lambda b=beside: b.update(load_head_raw(counted, {}, 4, a.seconds)))
            t.start()
            run["uncounted_with_counted_beside"] = load_head_raw(plain, {}, a.connections, a.seconds)
            t.join()
            run["counted_beside"] = beside
            run["loadavg"] = loadavg()
            res["runs"].append(run)
            print({k: round(v["rps"]) for k, v in run.items() if isinstance(v, dict)}, flush=True)
        downloads = api.model_info("bench/m").downloads
    finally:
        stop(proc)
    med = {k: median([r[k]["rps"] for r in res["runs"]]) for k in ("uncounted", "counted",
                                                                     "uncounted_with_counted_beside")}
    res["median_rps"] = med
    res["ratio_counted_vs_uncounted"] = med["counted"] / med["uncounted"]
    res["ratio_uncounted_beside_vs_alone"] = med["uncounted_with_counted_beside"] / med["uncounted"]
    res["counted_p99_ms"] = median([r["counted"]["p99_ms"] for r in res["runs"]])
    res["downloads_reported"] = downloads
    res["downloads_sent"] = warm + sum(r["counted"]["requests"] + r["counted_beside"]["requests"] for r in res["runs"])
    out = write_json(f"counted-heads{'-' + a.label if a.label else ''}.json", res)
    print(f"counted/uncounted = {res['ratio_counted_vs_uncounted']:.2f} (target >= 0.8); uncounted with counted "
          f"beside / alone = {res['ratio_uncounted_beside_vs_alone']:.2f}; load {res['loadavg_start']} -> "
          f"{res['loadavg_end']}; {out}")


if __name__ == "__main__":
    main()
