"""igsched's benchmark: one command, one JSON document, plots and a Markdown table.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python bench/run.py [--quick] [--out bench/results] [--only burst,pg,pg_capped,enqueue,idle]

Scenarios (the fake Graph API runs in its own process with 50 ms latency per call; daemons
are `igsched run` processes, as in production):
- burst: 1,000 image posts over 100 accounts due within one second, SQLite, one daemon, and
  in the same run the floor: a bare httpx client sending the same media_publish calls at the
  same concurrency, each at its post's due time;
- pg: 10,000 posts over 1,000 accounts on PostgreSQL with 1, 2 and 3 daemons (--quick:
  600 over 100);
- pg_capped: the same with each daemon held to --daemon-cpu of one core (0.3 by default; a
  cgroup each): on a machine whose cores the daemons share with PostgreSQL and the fake API,
  whether daemons scale shows only where each has CPU of its own, as on hosts of their own;
- enqueue: 100,000 posts a month ahead enqueued at once on SQLite (--quick: 20,000), until
  every one is through its first step;
- idle: a daemon over that planned queue, nothing due: CPU, statements a minute, memory.

Every figure carries the load average (1, 5, 15 min) when it was taken: the machine may be
shared. Prints the JSON document on stdout; writes results.json, the plots (PNG) and
table.md into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import report, scenarios
from bench.harness import Account, Emulator, loadavg, machine, make_accounts, pg_schema, sqlite_file
from scheduler.config import DaemonSettings

LATENCY_S = 0.05


def run(args: argparse.Namespace) -> dict[str, Any]:
    only = set(args.only.split(",")) if args.only else {"burst", "pg", "pg_capped", "enqueue", "idle"}
    if args.pg_scale:
        only.add("enqueue_pg")
    quick = args.quick
    doc: dict[str, Any] = {
        "benchmark": "igsched", "quick": quick, "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine(),
        "latency_s": LATENCY_S, "loadavg_start": loadavg(),
    }
    workers = args.workers
    emu = Emulator()
    try:
        with tempfile.TemporaryDirectory(prefix="igsched-bench-") as tmp:
            folder = Path(tmp)
            if "burst" in only:
                accounts = make_accounts(100)
                emu.setup(accounts, LATENCY_S, quota=100)
                concurrency = workers or DaemonSettings().workers
                with sqlite_file() as url:
                    b = scenarios.burst(emu, url, accounts, 1000, 1, workers, lead_s=args.lead, spread_s=1.0,
                                        folder=folder)
                f = scenarios.floor(emu, accounts, 1000, concurrency, spread_s=1.0)
                # the same on httpx's own pool (graph/transport.py: why igsched does not use it)
                f1 = scenarios.floor(emu, accounts, 1000, concurrency, spread_s=1.0, one_pool=True)
                b["vs_floor"] = round(b["span_s"] / f["span_s"], 2) if b.get("span_s") and f["span_s"] else None
                doc["burst_sqlite"] = {"igsched": b, "floor": f, "floor_one_pool": f1}
                _progress("burst", b, f, f1)
            if only & {"pg", "pg_capped"}:
                n_acc, n_posts = (100, 600) if quick else (1000, 10_000)
                accounts = make_accounts(n_acc)
                pg_lead = args.lead * 2 / 3 if quick else 1.5 * args.lead
            if "pg" in only:
                runs = _pg_runs(emu, accounts, n_posts, workers, pg_lead, folder, None)
                emu.setup(accounts, LATENCY_S, quota=100)
                f = scenarios.floor(emu, accounts, n_posts, workers or DaemonSettings().workers, spread_s=1.0)
                doc["pg_daemons"] = {"runs": runs, "floor": f}
            if "pg_capped" in only:
                # staging too runs at the capped pace: a longer lead, so that one daemon still
                # stages every post before its time and the figure is publishing alone
                lead = pg_lead * 0.5 / args.daemon_cpu
                runs = _pg_runs(emu, accounts, n_posts, workers, lead, folder, args.daemon_cpu)
                # one daemon with the CPU of two: what two daemons do set against one with the
                # same CPU, so that coordination's cost shows apart from a cap's own effect
                same_cpu = _pg_run(emu, accounts, n_posts, 1, workers, lead, folder, 2 * args.daemon_cpu)
                two = runs[1].get("posts_per_s") or 0
                same_cpu["two_daemons_vs_this"] = (round(two / same_cpu["posts_per_s"], 2)
                                                   if same_cpu.get("posts_per_s") else None)
                doc["pg_daemons_capped"] = {"daemon_cpu": args.daemon_cpu, "runs": runs,
                                            "one_daemon_with_two_caps": same_cpu}
            if "enqueue_pg" in only:
                accounts = make_accounts(100)
                emu.setup(accounts, LATENCY_S, quota=100)
                with pg_schema() as url:
                    doc["enqueue_pg"] = scenarios.enqueue_scale(url, accounts, args.pg_scale or 100_000, folder,
                                                                emu.base_url)
                    _progress("enqueue pg", doc["enqueue_pg"])
            if "enqueue" in only or "idle" in only:
                n = 20_000 if quick else 100_000
                accounts = make_accounts(100)
                emu.setup(accounts, LATENCY_S, quota=100)
                with sqlite_file() as url:
                    if "enqueue" in only:
                        doc["enqueue_sqlite"] = scenarios.enqueue_scale(url, accounts, n, folder, emu.base_url)
                        _progress("enqueue", doc["enqueue_sqlite"])
                    if "idle" in only:
                        if "enqueue" not in only:
                            scenarios.enqueue_scale(url, accounts, n, folder, emu.base_url)
                        doc["idle_sqlite"] = {"planned_posts": n, **scenarios.idle(
                            url, accounts, folder, emu.base_url, 30 if quick else 70)}
                        _progress("idle", doc["idle_sqlite"])
    finally:
        emu.close()
    doc["loadavg_end"] = loadavg()
    return doc


def _pg_run(emu: Emulator, accounts: list[Account], n_posts: int, daemons: int, workers: int | None, lead: float,
            folder: Path, daemon_cpu: float | None) -> dict[str, Any]:
    """One PostgreSQL burst on a fresh schema, each daemon held to `daemon_cpu` if given."""
    emu.setup(accounts, LATENCY_S, quota=100)
    with pg_schema() as url:
        r = scenarios.burst(emu, url, accounts, n_posts, daemons, workers, lead_s=lead, spread_s=1.0,
                            folder=folder, daemon_cpu=daemon_cpu)
    _progress(f"pg x{daemons}" + (f" capped {daemon_cpu}" if daemon_cpu else ""), r)
    return r


def _pg_runs(emu: Emulator, accounts: list[Account], n_posts: int, workers: int | None, lead: float,
             folder: Path, daemon_cpu: float | None) -> list[dict[str, Any]]:
    """The same burst with 1, 2 and 3 daemons; each run's throughput also as a multiple of
    one daemon's."""
    runs = [_pg_run(emu, accounts, n_posts, daemons, workers, lead, folder, daemon_cpu) for daemons in (1, 2, 3)]
    one = runs[0].get("posts_per_s") or 0
    for r in runs:
        r["speedup_vs_one"] = round((r.get("posts_per_s") or 0) / one, 2) if one else None
    return runs


def _progress(name: str, *parts: dict[str, Any]) -> None:
    brief = [{k: v for k, v in p.items() if k not in ("lateness_all_s", "log_tail")} for p in parts]
    print(f"[bench] {name}: {json.dumps(brief)}", file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller PostgreSQL and enqueue runs (about 3 min)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"), help="folder for JSON, PNG, table")
    ap.add_argument("--only", default="",
                    help="comma-separated: burst,pg,pg_capped,enqueue,idle,enqueue_pg (default: all but "
                         "enqueue_pg)")
    ap.add_argument("--workers", type=int, default=None, help="daemon.workers (default: igsched's default)")
    ap.add_argument("--lead", type=float, default=None,
                    help="the posts' lead time: they fall due this + 5 s after enqueue, and staging "
                         "(container creation and checks) must be done by then, see ready_before_due; "
                         "default 30 with --quick, 60 without; the PostgreSQL runs use half of it with "
                         "--quick, 1.5 times without")
    ap.add_argument("--daemon-cpu", type=float, default=0.3,
                    help="pg_capped: each daemon held to this share of one core (a cgroup of its own, "
                         "as if on a host of its own), so that daemons, PostgreSQL and the fake API do "
                         "not contend for this machine's cores; needs a writable cgroup file system")
    ap.add_argument("--pg-scale", type=int, default=0,
                    help="also enqueue this many posts at once on PostgreSQL (enqueue_pg; default 100,000 "
                         "when named in --only)")
    args = ap.parse_args()
    if args.lead is None:
        args.lead = 30.0 if args.quick else 60.0
    t0 = time.monotonic()
    doc = run(args)
    doc["bench_wall_s"] = round(time.monotonic() - t0, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=2))
    doc["plots"] = report.plots(doc, out)
    (out / "table.md").write_text(report.table(doc))
    slim = json.loads(json.dumps(doc))
    for run_ in [slim.get("burst_sqlite", {}).get("igsched", {}), slim.get("burst_sqlite", {}).get("floor", {}),
                 slim.get("burst_sqlite", {}).get("floor_one_pool", {}),
                 slim.get("pg_daemons", {}).get("floor", {}), *slim.get("pg_daemons", {}).get("runs", [])]:
        run_.pop("lateness_all_s", None)
    print(json.dumps(slim, indent=2))
    os.sync()


if __name__ == "__main__":
    main()
