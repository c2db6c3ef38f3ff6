"""Plumbing shared by the bench scenarios: the fake Graph API in its own process, daemon
processes, configurations, PostgreSQL schemas, load average and process figures.

Everything runs as a user would run it: `python -m scheduler emulator` and
`python -m scheduler --config … run` are separate processes; the bench process only enqueues,
watches the database and measures.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("IGSCHED_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IG_BASE = 17841400000100000


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem_gb = round(kb / 1024 / 1024, 1)
    return {"cpus": os.cpu_count(), "cpu": model, "mem_gb": mem_gb, "python": sys.version.split()[0],
            "platform": sys.platform}


@dataclass
class Account:
    name: str
    ig_user_id: str
    token: str

    @property
    def env(self) -> str:
        return f"IGSCHED_BENCH_TOKEN_{self.name.upper()}"


def make_accounts(n: int) -> list[Account]:
    return [Account(f"a{i:04d}", str(IG_BASE + i), f"bench-token-{i:04d}-{uuid.uuid4().hex[:8]}")
            for i in range(n)]


class Emulator:
    """`python -m scheduler emulator` in its own process (its own core, its own GIL)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scheduler", "emulator", "--port", str(self.port)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.http = httpx.Client(base_url=f"{self.base_url}/_emulator", timeout=60)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.http.get("/health").raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.1)

    def post(self, path: str, body: Any) -> Any:
        r = self.http.post(path, json=body)
        r.raise_for_status()
        return r.json()

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params)
        r.raise_for_status()
        return r.json()

    def setup(self, accounts: list[Account], latency_s: float, quota: int) -> None:
        self.post("/reset", {})
        # the app-wide allowance as Meta's platform limit sets it: 200 calls an hour per user
        # (here: per account); the fake API's default (20,000) is one small app's, and 10,000
        # posts over 1,000 accounts would meet it
        self.post("/config", {"latency_s": latency_s, "containers_per_day": None,
                              "default_processing_s": {"image": 0.0}, "request_log_limit": 2_000_000,
                              "app_usage_budget": max(20_000, 200 * len(accounts))})
        for i in range(0, len(accounts), 200):
            chunk = accounts[i:i + 200]
            self.post("/accounts", [{"ig_user_id": a.ig_user_id, "username": a.name, "token": a.token,
                                     "quota_total": quota} for a in chunk])

    def calls_by_endpoint(self, since: int = 0) -> tuple[dict[str, int], int]:
        log = self.get("/requests", since=since)
        out: dict[str, int] = {}
        for entry in log:
            out[entry["endpoint"]] = out.get(entry["endpoint"], 0) + 1
        return out, since + len(log)

    def close(self) -> None:
        self.http.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def write_config(folder: Path, db_url: str, base_url: str, identity: str, accounts: list[Account],
                 lead_s: float, workers: int | None = None) -> Path:
    daemon: dict[str, Any] = {"identity": identity, "tick_s": 5}
    if workers is not None:
        daemon["workers"] = workers
    cfg = {
        "database": {"url": db_url},
        "graph": {"base_url": base_url, "timeout_s": 10},
        "accounts": [{"name": a.name, "ig_user_id": a.ig_user_id, "token_env": a.env} for a in accounts],
        "daemon": daemon,
        "staging": {"lead_s": {"image": lead_s}, "poll_min_s": 0.5},
        "preflight": {"enabled": False},
        "queue": {"inbox_dir": None},
        "log_level": "WARNING",
    }
    path = folder / f"{identity}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@dataclass
class Daemons:
    """Daemon processes, each with its own configuration (identity); with `cpu_cap`, each
    held to that fraction of one core, as if on a host of its own (`CpuCap`)."""

    cpu_cap: float | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    caps: list[CpuCap] = field(default_factory=list)

    def start(self, configs: list[Path], accounts: list[Account], folder: Path) -> None:
        env = {**os.environ, **{a.env: a.token for a in accounts}}
        # IGSCHED_BENCH_PROFILE=DIR: each daemon runs under py-spy (a dev tool), one SVG each
        profile = os.environ.get("IGSCHED_BENCH_PROFILE")
        for cfg in configs:
            log = folder / f"{cfg.stem}.log"
            cmd = [sys.executable, "-m", "scheduler", "--config", str(cfg), "run"]
            if profile:
                spy = Path(sys.executable).parent / "py-spy"
                cmd = [str(spy), "record", "--threads", "-f", "raw", "-r", "50",
                       "-o", str(Path(profile) / f"{cfg.stem}.txt"), "--", *cmd]
            cap = CpuCap(self.cpu_cap) if self.cpu_cap else None
            with log.open("wb") as err:
                self.procs.append(subprocess.Popen(
                    cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
                    # the child joins its cap before exec: start-up is held to it too
                    preexec_fn=cap.join if cap else None))
            self.logs.append(log)
            if cap:
                self.caps.append(cap)

    def stop(self) -> None:
        # py-spy writes its profile on SIGINT
        sig = signal.SIGINT if os.environ.get("IGSCHED_BENCH_PROFILE") else signal.SIGTERM
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(sig)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()
        for cap in self.caps:
            cap.remove()
        self.caps.clear()

    def throttled_s(self) -> float:
        """Seconds the daemons' caps held them back so far (0 without caps)."""
        return sum(cap.throttled_s() for cap in self.caps)

    def cpu_s(self) -> float:
        """User + system CPU seconds of the daemons so far."""
        return sum(proc_cpu_s(p.pid) for p in self.procs if p.poll() is None)

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def log_tail(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in self.logs if p.exists())


class CpuCap:
    """One process held to a fraction of one core by the kernel's CFS bandwidth control: a
    cgroup of its own (v2 `cpu.max`, else v1 `cpu.cfs_quota_us`). The bench uses it to show
    whether daemons scale when each has CPU of its own, as on hosts of their own, on a
    machine whose few cores the database and the fake API share. Needs a writable cgroup
    file system (root, or a delegated subtree)."""

    PERIOD_US = 10_000  # short periods: a capped daemon runs often for a little, not 100 ms on, 200 off

    def __init__(self, fraction: float) -> None:
        if not 0 < fraction <= (os.cpu_count() or 1):
            raise ValueError(f"a CPU cap of {fraction} cores is not possible here")
        quota = max(1000, round(fraction * self.PERIOD_US))
        name = f"igsched-bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        v2 = Path("/sys/fs/cgroup/cgroup.controllers")
        try:
            if v2.exists() and "cpu" in v2.read_text().split():
                self.path = Path("/sys/fs/cgroup") / name
                self.path.mkdir()
                (self.path / "cpu.max").write_text(f"{quota} {self.PERIOD_US}")
            else:
                self.path = Path("/sys/fs/cgroup/cpu") / name
                self.path.mkdir()
                (self.path / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
                (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        except OSError as e:
            raise RuntimeError(f"cannot cap a daemon's CPU here (cgroup file system: {e.strerror})") from e

    def join(self) -> None:
        """Move the calling process into the cap (called in the child before exec)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def throttled_s(self) -> float:
        with contextlib.suppress(OSError, ValueError):
            stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
            if "throttled_usec" in stat:
                return int(stat["throttled_usec"]) / 1e6
            return int(stat.get("throttled_time", 0)) / 1e9
        return 0.0

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.rmdir()


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh schema on the PostgreSQL server, dropped afterwards."""
    schema = "bench_" + uuid.uuid4().hex[:10]
    eng = sa.create_engine(PG_URL)
    with eng.begin() as c:
        c.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with eng.begin() as c:
            c.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        eng.dispose()


@contextlib.contextmanager
def sqlite_file() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="igsched-bench-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def postgres_cpu_s() -> float:
    """User + system CPU seconds of this machine's PostgreSQL server processes (every
    process named `postgres`: the bench's server is local, and nothing else uses it then)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            if (entry / "comm").read_text().strip() == "postgres":
                total += proc_cpu_s(int(entry.name))
    return total


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
