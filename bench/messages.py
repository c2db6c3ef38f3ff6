"""Benchmark: 1,000 planned DMs over 10 accounts, sent by the real daemon against the fake
Graph API over HTTP, on SQLite (default) or PostgreSQL (--db URL).

Two runs, each printed as one JSON object in a list:
  - "budgets raised": engagement.messages_per_hour above what each account sends, so every
    message goes out; reports throughput, Graph calls per message (1.0 is the floor: one
    POST /me/messages each) and whether any message went twice;
  - "budget defers": a budget below it (--budget, default 60 per account and hour), so the
    rest wait as `deferred` with their reason; reports how many were sent per account (never
    more than the budget) and that no call went to be refused.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scheduler.config import settings_from_dict
from scheduler.daemon import Daemon
from scheduler.emulator import RunningEmulator
from scheduler.store import NewAction, Store

FIRST_PERSON = 7_000_000_000_000_000


def one_run(label: str, messages: int, accounts: int, budget: int, db: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, RunningEmulator() as emu:
        names = [f"acct{i}" for i in range(accounts)]
        ig = {n: str(17841400000002000 + i) for i, n in enumerate(names)}
        for n in names:  # a token each: the fake API tells the accounts apart by it
            os.environ[f"IGSCHED_BENCH_TOKEN_{n.upper()}"] = f"bench-token-{n}"
            emu.state.add_account(ig[n], username=n, token=f"bench-token-{n}")
        for i in range(messages):
            emu.state.add_person(FIRST_PERSON + i)
        url = db or f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = settings_from_dict({
            "database": {"url": url},
            "graph": {"base_url": emu.base_url, "timeout_s": 10},
            "accounts": [{"name": n, "ig_user_id": ig[n], "token_env": f"IGSCHED_BENCH_TOKEN_{n.upper()}"}
                         for n in names],
            "daemon": {"identity": "bench", "tick_s": 1, "workers": 32},
            "engagement": {"messages_per_hour": budget},
            "log_level": "WARNING",
        }, "bench")
        store = Store(url)
        store.sync_accounts(settings.accounts)
        if db:  # a reused database: start from no actions
            with store.engine.begin() as c:
                c.exec_driver_sql("DELETE FROM actions")
                c.exec_driver_sql("DELETE FROM api_calls")
        planned = [NewAction(key=f"bench-{label[:6]}-{i}", account=names[i % accounts], kind="message",
                             target=str(FIRST_PERSON + i), payload={"message": {"text": f"hello {i}"}},
                             source="bench") for i in range(messages)]
        t0 = time.monotonic()
        store.plan_actions(planned, "bench")
        plan_s = time.monotonic() - t0
        daemon = Daemon(settings, store)

        def waiting_to_send() -> int:
            return len(store.list_actions(["pending", "sending"]))

        async def go() -> None:
            async def watch() -> None:
                while await asyncio.to_thread(waiting_to_send):
                    await asyncio.sleep(0.1)
                daemon.stop()

            watcher = asyncio.create_task(watch())
            try:
                await asyncio.wait_for(daemon.run(), 600)
            finally:
                watcher.cancel()

        t1 = time.monotonic()
        asyncio.run(go())
        wall = time.monotonic() - t1
        by_state = collections.Counter(a.state for a in store.list_actions())
        sent = emu.state.sent_messages()
        per_account = collections.Counter(m["account"] for m in sent)
        calls = [r for r in emu.state.requests if r["endpoint"] == "messages"]
        refused = [r for r in calls if r["outcome"] != "ok"]
        texts = collections.Counter(m["message"]["text"] for m in sent)
        deferred = store.list_actions(["deferred"])
        store.close()
        return {
            "run": label,
            "database": "postgresql" if url.startswith("postgres") else "sqlite",
            "messages": messages,
            "accounts": accounts,
            "messages_per_hour_budget": budget,
            "by_state": dict(by_state),
            "sent": len(sent),
            "sent_twice": sum(1 for n in texts.values() if n > 1),
            "plan_s": round(plan_s, 3),
            "run_wall_s": round(wall, 2),
            "messages_per_s": round(len(sent) / wall, 1) if wall else None,
            "graph_calls": len(emu.state.requests),
            "graph_calls_per_message": round(len(emu.state.requests) / max(1, len(sent)), 3),
            "send_calls_refused": len(refused),
            "max_sent_by_one_account": max(per_account.values(), default=0),
            "budget_honoured": all(n <= budget for n in per_account.values()),
            "deferred_reason_example": deferred[0].reason if deferred else None,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--accounts", type=int, default=10)
    ap.add_argument("--budget", type=int, default=60, help="messages per hour and account in the second run")
    ap.add_argument("--db", default=None, help="database URL (default: a temporary SQLite file)")
    args = ap.parse_args()
    raised = args.messages  # no account sends more than all of them
    print(json.dumps([
        one_run("budgets raised", args.messages, args.accounts, raised, args.db),
        one_run("budget defers", args.messages, args.accounts, args.budget, args.db),
    ], indent=2))


if __name__ == "__main__":
    main()
