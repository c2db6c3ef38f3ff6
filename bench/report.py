"""The bench's plots (PNG, matplotlib from the `bench` extra) and its Markdown table."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plots(doc: dict[str, Any], out: Path) -> list[str]:
    try:
        import matplotlib  # the bench extra; the table and JSON do without it

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made: list[str] = []
    burst = doc.get("burst_sqlite")
    if burst and burst["igsched"].get("lateness_all_s"):
        fig, ax = plt.subplots(figsize=(7, 4))
        late = sorted(burst["igsched"]["lateness_all_s"])
        ax.plot(late, [i / len(late) for i in range(len(late))], label="igsched (daemon, SQLite)")
        floor = sorted(burst["floor"].get("lateness_all_s") or [])
        if floor:
            ax.plot(floor, [i / len(floor) for i in range(len(floor))], color="grey", linestyle="--",
                    label=f"floor (bare httpx, concurrency {burst['floor']['concurrency']})")
        ax.set_xlabel("lateness after the due time (s)")
        ax.set_ylabel("share of posts live")
        ax.set_title(f"{burst['igsched']['posts']} posts over {burst['igsched']['accounts']} accounts "
                     f"due within 1 s, {int(doc['latency_s'] * 1000)} ms API latency")
        ax.legend()
        ax.grid(alpha=0.3)
        made.append(_save(fig, out / "lateness.png"))
    pg = doc.get("pg_daemons")
    capped = doc.get("pg_daemons_capped")
    if (pg and pg["runs"]) or (capped and capped["runs"]):
        fig, ax = plt.subplots(figsize=(6, 4))
        first = (pg if pg and pg["runs"] else capped or {})["runs"][0]
        if pg and pg["runs"]:
            ax.plot([r["daemons"] for r in pg["runs"]], [r.get("posts_per_s") or 0 for r in pg["runs"]],
                    marker="o", label="daemons uncapped")
            floor_rate = pg["floor"]["posts"] / pg["floor"]["span_s"] if pg["floor"]["span_s"] else 0
            ax.axhline(floor_rate, color="grey", linestyle="--", label="floor (one client)")
        if capped and capped["runs"]:
            runs = capped["runs"]
            ax.plot([r["daemons"] for r in runs], [r.get("posts_per_s") or 0 for r in runs], marker="s",
                    label=f"each held to {capped['daemon_cpu']} core")
            same = capped.get("one_daemon_with_two_caps")
            if same and same.get("posts_per_s"):
                ax.scatter([2], [same["posts_per_s"]], marker="^", color="C2", zorder=3,
                           label=f"1 held to {same['daemon_cpu_cap']} (CPU of two)")
        ax.set_xticks([1, 2, 3])
        ax.set_xlabel("daemons (processes) on one PostgreSQL")
        ax.set_ylabel("posts live per second")
        ax.set_title(f"{first['posts']} posts over {first['accounts']} accounts")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.35)  # room above the lines for the legend
        ax.legend(fontsize=8, loc="upper left", ncol=2)
        ax.grid(alpha=0.3)
        made.append(_save(fig, out / "throughput.png"))
    runs = [("burst SQLite", burst["igsched"])] if burst else []
    runs += [(f"PG x{r['daemons']}", r) for r in (pg or {}).get("runs", [])]
    runs += [(f"PG x{r['daemons']} capped", r) for r in (capped or {}).get("runs", [])]
    if runs:
        kinds = sorted({k for _, r in runs for k in r["calls_per_post"]})
        fig, ax = plt.subplots(figsize=(7, 4))
        bottom = [0.0] * len(runs)
        for kind in kinds:
            vals = [r["calls_per_post"].get(kind, 0.0) for _, r in runs]
            ax.bar([n for n, _ in runs], vals, bottom=bottom, label=kind)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_ylabel("Graph calls per post")
        ax.set_title("calls per post by kind")
        ax.legend(fontsize=8)
        made.append(_save(fig, out / "calls_per_post.png"))
    return made


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return str(path)


def _staged(r: dict[str, Any]) -> str:
    """Whether the figure measures publishing alone (every post staged before its time)."""
    if r["ready_before_due"] >= r["posts"]:
        return f"all staged before their time (staging {r['staging_s']} s)"
    return (f"**only {r['ready_before_due']} of {r['posts']} staged before their time** (staging "
            f"{r['staging_s']} s): the figure includes staging; re-run with a longer --lead")


def _split(r: dict[str, Any]) -> str:
    """The burst's CPU by process, and the cores it kept busy (what bounds more daemons)."""
    split = r.get("cpu_ms_per_post")
    if not split:
        return ""
    parts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in split.items())
    ceiling = r.get("cpu_ceiling_posts_per_s")
    return (f"CPU ms/post: {parts}; {r.get('cores_busy')} cores busy; "
            + (f"the CPU allows {ceiling} posts/s at that cost; " if ceiling else ""))


def _la(x: list[float] | None) -> str:
    return "/".join(f"{v:.1f}" for v in x) if x else "?"


def _one_pool(burst: dict[str, Any]) -> str:
    f = burst.get("floor_one_pool")
    if not f:
        return ""
    return (f"; on httpx's own pool (httpcore): span {f['span_s']} s, p99 {f['lateness_s']['p99']} s")


def table(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        f"Machine: {m['cpus']} CPUs ({m['cpu'] or 'unknown'}), {m['mem_gb']} GB, Python {m['python']}. "
        f"Command: `{doc['command']}`. Fake Graph API latency {int(doc['latency_s'] * 1000)} ms per call. "
        f"Load average (1/5/15 min) at start: {_la(doc['loadavg_start'])}.",
        "",
        "| scenario | igsched | floor (bare httpx) | load avg |",
        "|---|---|---|---|",
    ]
    b = doc.get("burst_sqlite")
    if b:
        i, f = b["igsched"], b["floor"]
        lines.append(
            f"| {i['posts']} posts / {i['accounts']} accounts due within 1 s, SQLite, 1 daemon "
            f"({i['workers']} workers) | span {i['span_s']} s ({i['vs_floor']}× floor), lateness p50 "
            f"{i['lateness_s']['p50']} s, p99 {i['lateness_s']['p99']} s, max {i['lateness_s']['max']} s; "
            f"{i['calls_total_per_post']} calls/post; daemon CPU {i.get('daemon_cpu_ms_per_post')} ms/post; "
            f"published once: {i['published_once']}; {_staged(i)} "
            f"| span {f['span_s']} s, p50 {f['lateness_s']['p50']} s, p99 {f['lateness_s']['p99']} s "
            f"(concurrency {f['concurrency']}, {f.get('transport', 'httpx')}){_one_pool(b)} | {_la(i['loadavg'])} |")
    pg = doc.get("pg_daemons")
    if pg:
        f = pg["floor"]
        for r in pg["runs"]:
            lines.append(
                f"| {r['posts']} posts / {r['accounts']} accounts, PostgreSQL, {r['daemons']} daemon(s) "
                f"| {r['posts_per_s']} posts/s ({r['speedup_vs_one']}× one daemon), span {r['span_s']} s, "
                f"p99 {r['lateness_s']['p99']} s; daemon CPU {r.get('daemon_cpu_ms_per_post')} ms/post; "
                f"{_split(r)}"
                f"published once: {r['published_once']}; {_staged(r)} "
                f"| span {f['span_s']} s ({round(f['posts'] / f['span_s'], 1) if f['span_s'] else '?'} posts/s) "
                f"| {_la(r['loadavg'])} |")
    capped = doc.get("pg_daemons_capped")
    if capped:
        for r in capped["runs"]:
            lines.append(
                f"| {r['posts']} posts / {r['accounts']} accounts, PostgreSQL, {r['daemons']} daemon(s), "
                f"each held to {capped['daemon_cpu']} of a core "
                f"| {r['posts_per_s']} posts/s (**{r['speedup_vs_one']}× one daemon**), span {r['span_s']} s, "
                f"p99 {r['lateness_s']['p99']} s; daemon CPU {r.get('daemon_cpu_ms_per_post')} ms/post; "
                f"{_split(r)}held back {r.get('daemons_throttled_s')} s by the caps; "
                f"published once: {r['published_once']}; {_staged(r)} | — | {_la(r['loadavg'])} |")
        same = capped.get("one_daemon_with_two_caps")
        if same:
            lines.append(
                f"| the same, 1 daemon held to {same['daemon_cpu_cap']} of a core (the CPU of two above) "
                f"| {same['posts_per_s']} posts/s (two daemons do **{same['two_daemons_vs_this']}×** this), "
                f"span {same['span_s']} s, p99 {same['lateness_s']['p99']} s; "
                f"daemon CPU {same.get('daemon_cpu_ms_per_post')} ms/post; {_split(same)}"
                f"published once: {same['published_once']}; {_staged(same)} | — | {_la(same['loadavg'])} |")
    for key, label in (("enqueue_sqlite", "SQLite"), ("enqueue_pg", "PostgreSQL")):
        e = doc.get(key)
        if e:
            lines.append(
                f"| {e['posts']} posts a month ahead enqueued at once, {label} | enqueue {e['enqueue_s']} s "
                f"({e['enqueue_posts_per_s']}/s); all through their first step {e['through_first_step_s']} s "
                f"after the enqueue began | — | {_la(e['loadavg'])} |")
    idle = doc.get("idle_sqlite")
    if idle:
        lines.append(
            f"| idle daemon, {idle['planned_posts']} posts planned, SQLite ({idle['seconds']} s) | "
            f"{idle['cpu_pct']} % of a core, {idle.get('queries_per_min')} statements/min, "
            f"{idle['rss_mb']} MB resident | — | {_la(idle['loadavg'])} |")
    return "\n".join(lines) + "\n"
