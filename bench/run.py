"""cs3collab against its peers, same machine, same run, same load.

    python -m bench.run              # all scenarios, all servers (< 10 min on 2 cores)
    python -m bench.run --quick      # smaller sizes (< 2 min)
    python -m bench.run --smoke      # a few seconds per scenario, cs3collab only
    python -m bench.run --scenarios p1 --servers cs3collab --profile   # + py-spy flame graph

Servers (bench/servers.py): the cs3collab hub; jupyter-server-ydoc in a real ``jupyter server``
(jupyter-collaboration 5, installed into a separate bench venv); Hocuspocus (Node, SQLite).
Load (bench/node/loadgen.mjs): real Yjs clients in Node speaking each server's framing.

Scenarios:
  P1 fan-out   N editors in one notebook, each typing `rate` chars/s into its own cell: delivery
               latency to every other client, deliveries/s, server and generator CPU.
  P2 scale     idle connections (awareness renewed every 15 s) over more and more rooms: RSS per
               room (1 client) and per extra connection.
  P3 cold open notebooks with outputs: websocket connect -> SyncStep2 received (room not loaded).
  P4 memory    RSS growth per opened notebook / .ipynb size (measured during P3).
  P5 writes    one typist for a while: storage writes and bytes per minute, disk bytes written by
               the server process, update-log/store size after typing and after compaction.
  P6 scale-out two instances over one redis-server (cs3collab --fanout redis; Hocuspocus with
               extension-redis): editors split over the instances, cross-instance latency
               against the single-instance latency of the same server; then typists on one
               instance, receivers on the other, at stepped rates: the highest rate sustained.

Writes bench/results/<timestamp>.json and .png; prints a table with cs3collab/peer ratios.
"""

from __future__ import annotations

import argparse
import array
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.fswatch import WriteCounter
from bench.loadgen import Generator
from bench.notebooks import make_notebook
from bench.servers import (
    CLUSTERS,
    SERVERS,
    Cluster,
    Cs3collab,
    Server,
    cpu_seconds,
    disk_write_bytes,
    rss_bytes,
)
from bench.setup import BENCH_DIR, bench_python_bin, ensure_bench_venv, ensure_node
from devkit.hubproc import notebook, write_notebook

RESULTS = BENCH_DIR / "results"
MB = 1_000_000

PROFILES: dict[str, dict[str, Any]] = {
    "default": {
        "servers": ["cs3collab", "jupyter", "hocuspocus"],
        "p1_editors": 50, "p1_rate": 5.0, "p1_duration": 60.0, "p1_rounds": 2, "p1_window": 10.0,
        "p2_steps": [[20, 5], [60, 5], [120, 5]], "p2_notebook_bytes": 20_000,
        "p3_sizes_mb": [1, 10, 50], "p3_repeat": 2,
        "p5_duration": 40.0, "p5_notebook_mb": 1, "p5_rate": 5.0,
        "p6_editors": 10, "p6_rate": 5.0, "p6_duration": 20.0, "p6_window": 5.0,
        "p6_steps": [250, 500, 1000, 2000], "p6_step_duration": 10.0, "p6_typists": 2,
        "p6_receivers": 2, "p6_p99_bound_ms": 100.0,
        "settle": 1.0,
    },
    "quick": {
        "servers": ["cs3collab", "jupyter", "hocuspocus"],
        "p1_editors": 20, "p1_rate": 5.0, "p1_duration": 5.0, "p1_rounds": 1, "p1_window": 1.0,
        "p2_steps": [[10, 3], [20, 3]], "p2_notebook_bytes": 20_000,
        "p3_sizes_mb": [1, 5], "p3_repeat": 2,
        "p5_duration": 12.0, "p5_notebook_mb": 1, "p5_rate": 5.0,
        "p6_editors": 6, "p6_rate": 5.0, "p6_duration": 6.0, "p6_window": 2.0,
        "p6_steps": [250, 1000], "p6_step_duration": 4.0, "p6_typists": 2,
        "p6_receivers": 2, "p6_p99_bound_ms": 100.0,
        "settle": 0.3,
    },
    "smoke": {
        "servers": ["cs3collab"],
        "p1_editors": 4, "p1_rate": 5.0, "p1_duration": 3.0, "p1_rounds": 1, "p1_window": 1.0,
        "p2_steps": [[3, 2]], "p2_notebook_bytes": 5_000,
        "p3_sizes_mb": [1], "p3_repeat": 1,
        "p5_duration": 4.0, "p5_notebook_mb": 0.2, "p5_rate": 5.0,
        "p6_editors": 4, "p6_rate": 5.0, "p6_duration": 3.0, "p6_window": 1.0,
        "p6_steps": [250], "p6_step_duration": 3.0, "p6_typists": 2,
        "p6_receivers": 2, "p6_p99_bound_ms": 100.0,
        "settle": 0.3,
    },
}  # fmt: skip


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def spread(values: list[float]) -> dict[str, Any]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "all": []}
    return {
        "median": statistics.median(vals),
        "min": min(vals),
        "max": max(vals),
        "n": len(vals),
        "all": [round(v, 6) for v in vals],
    }


class Ctx:
    def __init__(self, prof: dict[str, Any], args: argparse.Namespace, tmp: Path) -> None:
        self.prof = prof
        self.args = args
        self.tmp = tmp
        self._nb_cache: dict[float, Path] = {}

    def notebook_file(self, mb: float) -> Path:
        """A synthetic notebook of about ``mb`` MB (generated once per run)."""
        if mb not in self._nb_cache:
            path = self.tmp / "notebooks" / f"nb-{mb}MB.ipynb"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(make_notebook(int(mb * MB)), indent=1))
            self._nb_cache[mb] = path
        return self._nb_cache[mb]


def _server(name: str, ctx: Ctx, tag: str, hub_env: dict[str, str] | None = None) -> Server:
    """A fresh server; ``hub_env`` adds settings for the cs3collab hub of this scenario only."""
    workdir = ctx.tmp / f"{tag}-{name}"
    workdir.mkdir(parents=True, exist_ok=True)
    if hub_env and name == "cs3collab":
        return Cs3collab(workdir, env=hub_env)
    return SERVERS[name](workdir)


# -- P1 fan-out --------------------------------------------------------------------------------


def p1_fanout(name: str, ctx: Ctx, round_no: int = 0) -> dict[str, Any]:
    """One round of P1 on a fresh server; the rounds of all servers are interleaved."""
    prof = ctx.prof
    n, rate = prof["p1_editors"], prof["p1_rate"]
    duration = prof["p1_duration"] / prof["p1_rounds"]
    k = max(1, min(ctx.args.generators, n))
    srv = _server(name, ctx, f"p1r{round_no}")
    write_notebook(srv.root / "p1.ipynb", notebook(*[f"# editor {i}\n" for i in range(n)]))
    with srv:
        target = srv.target("p1.ipynb")
        gens: list[Generator] = []
        lat_files = []
        first = 0
        for g in range(k):
            count = n // k + (1 if g < n % k else 0)
            lat_files.append(srv.workdir / f"latency-{g}.f64")
            cfg = {
                "mode": "type", "protocol": srv.protocol, "target": target,
                "clients": count, "first": first, "rate": rate, "duration": duration,
                "window": prof["p1_window"], "processes": k, "totalClients": n,
                "latencyFile": str(lat_files[-1]), "drainMs": 10000, "apply": ctx.args.apply,
            }  # fmt: skip
            gens.append(Generator(cfg, srv.workdir))
            first += count
        for gen in gens:
            gen.expect("connected", timeout=180)
        rss_before = rss_bytes(srv.pid)
        for gen in gens:
            gen.go()
        for gen in gens:
            gen.expect("typing", timeout=60)
        profiler = None
        load0 = os.getloadavg()[0]
        if ctx.args.profile and name == "cs3collab" and round_no == 0:
            profiler = _start_profiler(srv.pid, duration)
        s_cpu0, g_cpu0 = cpu_seconds(srv.pid), sum(cpu_seconds(g.pid) for g in gens)
        stalls0 = srv.loop_stalls()
        t0 = time.monotonic()
        rss_peak = rss_before
        closed: dict[str, int] = {}
        for gen in gens:
            while True:
                try:
                    typed = gen.expect("typed", timeout=2)
                    for code, count in typed.get("closed", {}).items():
                        closed[code] = closed.get(code, 0) + count
                    break
                except TimeoutError:
                    rss_peak = max(rss_peak, rss_bytes(srv.pid))
        elapsed = time.monotonic() - t0
        stalls1 = srv.loop_stalls()
        s_cpu = cpu_seconds(srv.pid) - s_cpu0
        g_cpu = sum(cpu_seconds(g.pid) for g in gens) - g_cpu0
        results = [gen.expect("result", timeout=120) for gen in gens]
        for gen in gens:
            gen.close()
        if profiler is not None:
            profiler.wait(60)
    pairs: list[tuple[float, float]] = []
    for f in lat_files:
        a = array.array("d")
        if f.exists():
            a.frombytes(f.read_bytes())
        pairs.extend(zip(a[0::2], a[1::2], strict=True))
    return {
        "pairs": pairs,
        "sent": sum(r["sent"] for r in results),
        "expected_local": sum(r["expectedLocalDeliveries"] for r in results),
        "deliveries": sum(r["deliveries"] for r in results),
        "elapsed": elapsed,
        "server_cpu_s": s_cpu,
        "generator_cpu_s": g_cpu,
        "loop_p99": max(r["eventLoopDelayMs"]["p99"] for r in results),
        "server_loop_stalls": None if stalls0 is None or stalls1 is None else stalls1 - stalls0,
        "rss_before": rss_before,
        "rss_peak": rss_peak,
        "generators": k,
        "load_avg": [load0, os.getloadavg()[0]],
        "closed": closed,
    }


def _sum_known(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def p1_merge(rounds: list[dict[str, Any]], ctx: Ctx) -> dict[str, Any]:
    """Pool the rounds: percentiles over all deliveries, spread = per-round values."""
    prof = ctx.prof
    if any("error" in r for r in rounds):
        return next(r for r in rounds if "error" in r)
    lats = [lat for r in rounds for _, lat in r["pairs"]]
    elapsed = sum(r["elapsed"] for r in rounds)
    windows: list[float] = []
    for r in rounds:
        if not r["pairs"]:
            continue
        start = min(t for t, _ in r["pairs"])
        width = prof["p1_window"] * 1000
        buckets: dict[int, list[float]] = {}
        for t, lat in r["pairs"]:
            buckets.setdefault(int((t - start) // width), []).append(lat)
        windows += [pct(v, 99) or 0.0 for _, v in sorted(buckets.items()) if len(v) > 20]
    per_round = [
        {
            "p50": pct([lat for _, lat in r["pairs"]], 50),
            "p99": pct([lat for _, lat in r["pairs"]], 99),
            "max": max((lat for _, lat in r["pairs"]), default=None),
            "server_cpu_percent": 100 * r["server_cpu_s"] / r["elapsed"],
            "load_avg": r["load_avg"],
            "closed": r["closed"],
        }
        for r in rounds
    ]
    sent = sum(r["sent"] for r in rounds)
    return {
        "editors": prof["p1_editors"],
        "rounds": len(rounds),
        "generators": rounds[0]["generators"],
        "applied_updates": bool(ctx.args.apply),
        "keystrokes": sent,
        "keystrokes_per_s": sent / elapsed,
        "latency_ms": {
            "n": len(lats),
            "p50": pct(lats, 50),
            "p99": pct(lats, 99),
            "max": max(lats) if lats else None,
            "mean": statistics.fmean(lats) if lats else None,
        },
        "p99_by_round_ms": spread([r["p99"] for r in per_round]),
        "p99_by_window_ms": spread(windows),
        "per_round": per_round,
        "lost_local_deliveries": sum(r["expected_local"] for r in rounds) - len(lats),
        "clients_closed_by_server": sum(sum(r["closed"].values()) for r in rounds),
        "close_codes": [r["closed"] for r in rounds],
        "deliveries_per_s": sum(r["deliveries"] for r in rounds) / elapsed,
        "server_cpu_percent": 100 * sum(r["server_cpu_s"] for r in rounds) / elapsed,
        "generator_cpu_percent": 100 * sum(r["generator_cpu_s"] for r in rounds) / elapsed,
        "generator_event_loop_p99_ms": max(r["loop_p99"] for r in rounds),
        "server_loop_stalls_over_10ms": _sum_known([r.get("server_loop_stalls") for r in rounds]),
        "server_rss_mib": {
            "before": max(r["rss_before"] for r in rounds) / 2**20,
            "peak": max(r["rss_peak"] for r in rounds) / 2**20,
        },
        "seconds": elapsed,
    }


def _start_profiler(pid: int, duration: float) -> subprocess.Popen[bytes]:
    """py-spy on the hub for the typing window: a flame graph and collapsed stacks."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    common = ["--pid", str(pid), "--duration", str(max(1, int(duration) - 1)), "--rate", "100",
              "--idle", "--threads"]  # fmt: skip
    spy = str(bench_python_bin("py-spy"))
    log(f"profiling hub pid {pid} -> {RESULTS / 'p1.svg'}, {RESULTS / 'p1.txt'}")
    subprocess.Popen(
        [spy, "record", "-f", "raw", "-o", str(RESULTS / "p1.txt"), *common],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return subprocess.Popen(
        [spy, "record", "-o", str(RESULTS / "p1.svg"), *common],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


# -- P2 idle connections over many rooms ------------------------------------------------------


# All P2 clients are one user from one address; the hub's default caps (1,024 per user, 4,096
# per address) would refuse most of them. Lifted for this scenario only (0 = no cap).
P2_HUB_ENV = {
    "CS3COLLAB_MAX_CONNECTIONS_PER_USER": "0",
    "CS3COLLAB_MAX_CONNECTIONS_PER_ADDRESS": "0",
}


def p2_scale(name: str, ctx: Ctx) -> dict[str, Any]:
    """Rooms opened 16 at a time, then each step's extra clients as a reconnect storm: all at
    once (``p2_storm`` 0, the default) or ``p2_storm`` at a time, the same for every server.
    Admission is the storm's seconds until its last client has synced."""
    prof = ctx.prof
    steps = prof["p2_steps"]
    rooms = max(r for r, _ in steps)
    srv = _server(name, ctx, "p2", hub_env=P2_HUB_ENV)
    data = json.dumps(make_notebook(prof["p2_notebook_bytes"]), indent=1)
    for i in range(rooms):
        (srv.root / f"room{i}.ipynb").write_text(data)
    out: list[dict[str, Any]] = []
    with srv:
        time.sleep(prof["settle"])
        base = rss_bytes(srv.pid)
        targets = [srv.target(f"room{i}.ipynb") for i in range(rooms)]
        gen = Generator(
            {"mode": "idle", "protocol": srv.protocol, "targets": targets,
             "connectConcurrency": 16, "clientsConcurrency": prof.get("p2_storm", 0),
             "syncTimeoutMs": 300_000,
             "steps": [{"rooms": r, "clients": c} for r, c in steps]},
            srv.workdir,
        )  # fmt: skip
        failed = None
        for r, c in steps:
            ev = gen.expect("stage", timeout=600)
            time.sleep(prof["settle"])
            rss_r = rss_bytes(srv.pid)
            step: dict[str, Any] = {"rooms": r, "rss_rooms_mib": rss_r / 2**20,
                                    "open_rooms_s": ev["seconds"]}  # fmt: skip
            if ev.get("failed"):
                failed = ev["failed"]
                out.append(step)
                gen.go()
                break
            gen.go()
            ev2 = gen.expect("stage", timeout=600)
            time.sleep(prof["settle"])
            rss_c = rss_bytes(srv.pid)
            conns = ev2["connections"]
            extra = conns - ev["connections"]
            step.update({
                "clients_per_room": c,
                "connections": conns,
                "rss_all_mib": rss_c / 2**20,
                "rss_per_room_kib": (rss_r - base) / r / 1024,
                "rss_per_connection_kib": (rss_c - rss_r) / extra / 1024 if extra else None,
                "open_clients_s": ev2["seconds"],
                "admitted": extra,
                "admissions_per_s": extra / ev2["seconds"] if extra and ev2["seconds"] else None,
                "closed": ev2.get("closed", 0),
            })  # fmt: skip
            out.append(step)
            gen.go()
            if ev2.get("failed"):
                failed = ev2["failed"]
                break
        gen.expect("result", timeout=120)
        gen.close()
    last = out[-1]
    storms = [s for s in out if s.get("admitted")]
    biggest = max(storms, key=lambda s: s["admitted"]) if storms else {}
    return {
        "base_rss_mib": base / 2**20,
        "storm_concurrency": prof.get("p2_storm", 0) or "all",
        "admission_s": biggest.get("open_clients_s"),
        "admitted": biggest.get("admitted"),
        "admissions_per_s": biggest.get("admissions_per_s"),
        "steps": out,
        "failed": failed,
        "rss_per_room_kib": spread([s["rss_per_room_kib"] for s in out if "rss_per_room_kib" in s]),
        "rss_per_connection_kib": spread(
            [s["rss_per_connection_kib"] for s in out if s.get("rss_per_connection_kib")]
        ),
        "max_connections": last.get("connections"),
        "max_rss_mib": last.get("rss_all_mib", last["rss_rooms_mib"]),
    }


# -- P3 cold open + P4 memory per notebook ----------------------------------------------------


def _wait_idle(pid: int, quiet: float = 0.05, window: float = 0.25, limit: float = 10.0) -> float:
    """Seconds until the process tree used under ``quiet`` of a core for one ``window``."""
    start = time.monotonic()
    before = cpu_seconds(pid)
    while time.monotonic() - start < limit:
        time.sleep(window)
        now = cpu_seconds(pid)
        if now - before <= quiet * window:
            break
        before = now
    return time.monotonic() - start


def p3_open(name: str, ctx: Ctx) -> dict[str, Any]:
    prof = ctx.prof
    srv = _server(name, ctx, "p3")
    files: list[tuple[float, int, str]] = []
    for mb in prof["p3_sizes_mb"]:
        src = ctx.notebook_file(mb)
        for r in range(prof["p3_repeat"]):
            fname = f"open-{mb}MB-{r}.ipynb"
            shutil.copyfile(src, srv.root / fname)
            files.append((mb, src.stat().st_size, fname))
    opens: list[dict[str, Any]] = []
    with srv:
        time.sleep(1)
        targets = []
        for _mb, _size, fname in files:
            t0 = time.perf_counter()
            t = srv.target(fname)
            t["session_s"] = time.perf_counter() - t0
            targets.append(t)
        gen = Generator({"mode": "open", "protocol": srv.protocol, "targets": targets}, srv.workdir)
        for (mb, size, _fname), t in zip(files, targets, strict=True):
            rss0 = rss_bytes(srv.pid)
            ev = gen.expect("opened", timeout=900)
            # let the server finish what follows the sync (ystore writes, GC)
            time.sleep(min(0.5, prof["settle"]))
            rss_soon = rss_bytes(srv.pid)
            # P4 is the memory an open notebook keeps: wait until the server is idle (stores
            # and logs written, buffers freed), for every server alike
            idle_after = _wait_idle(srv.pid)
            rss1 = rss_bytes(srv.pid)
            opens.append({
                "mb": mb, "bytes": size, "session_s": t["session_s"],
                "open_s": ev.get("connectMs", 0) / 1000 if "error" not in ev else None,
                "ws_open_to_step2_s": ev.get("step2Ms", 0) / 1000 if "error" not in ev else None,
                "step2_bytes": ev.get("bytes"), "error": ev.get("error"),
                "rss_delta_mib": (rss1 - rss0) / 2**20, "rss_ratio": (rss1 - rss0) / size,
                "rss_ratio_at_0_5s": (rss_soon - rss0) / size, "idle_after_s": idle_after,
            })  # fmt: skip
            gen.go()
        gen.expect("result", timeout=120)
        gen.close()
    by_size: dict[str, Any] = {}
    for mb in prof["p3_sizes_mb"]:
        rows = [o for o in opens if o["mb"] == mb]
        by_size[f"{mb}MB"] = {
            "bytes": rows[0]["bytes"],
            "open_s": spread([o["open_s"] for o in rows]),
            "ws_open_to_step2_s": spread([o["ws_open_to_step2_s"] for o in rows]),
            "session_s": spread([o["session_s"] for o in rows]),
            # P4: memory per open notebook / its size. The first open of each size is the
            # cleanest (later ones may reuse memory freed by earlier loads).
            "rss_ratio": spread([o["rss_ratio"] for o in rows]),
            "rss_delta_mib": spread([o["rss_delta_mib"] for o in rows]),
            "rss_ratio_at_0_5s": spread([o["rss_ratio_at_0_5s"] for o in rows]),
            "errors": [o["error"] for o in rows if o["error"]],
        }
    return {"by_size": by_size, "opens": opens}


# -- P5 write amplification -------------------------------------------------------------------


def p5_writes(name: str, ctx: Ctx) -> dict[str, Any]:
    prof = ctx.prof
    duration = prof["p5_duration"]
    srv = _server(name, ctx, "p5")
    fname = "p5.ipynb"
    shutil.copyfile(ctx.notebook_file(prof["p5_notebook_mb"]), srv.root / fname)
    size = (srv.root / fname).stat().st_size
    with srv:
        watch = WriteCounter(srv.root)
        try:
            target = srv.target(fname)
            gen = Generator(
                {"mode": "type", "protocol": srv.protocol, "target": target, "clients": 1,
                 "rate": prof["p5_rate"], "duration": duration},
                srv.workdir,
            )  # fmt: skip
            gen.expect("connected", timeout=180)
            time.sleep(2)  # what opening the room writes is not typing
            w0, b0 = watch.snapshot(fname)
            s0 = srv.store_events()
            d0 = disk_write_bytes(srv.pid)
            log0 = srv.log_sizes()
            gen.go()
            gen.expect("typing", timeout=60)
            t0 = time.monotonic()
            gen.expect("typed", timeout=duration + 60)
            typed = time.monotonic() - t0
            w1, b1 = watch.snapshot(fname)
            s1 = srv.store_events()
            d1 = disk_write_bytes(srv.pid)
            log1 = srv.log_sizes()
            res = gen.expect("result", timeout=60)
            gen.close()  # the client leaves: rooms unload (cs3collab after 3 s, compacting)
            time.sleep(5)
            w2, _ = watch.snapshot(fname)
            s2 = srv.store_events()
            log2 = srv.log_sizes()
        finally:
            watch.close()
    if srv.name == "hocuspocus":  # its storage is the SQLite document store
        writes, nbytes = s1[0] - s0[0], s1[1] - s0[1]
        final_writes = s2[0] - s1[0]
    else:
        writes, nbytes = w1 - w0, b1 - b0
        final_writes = w2 - w1
    per_min = 60 / typed
    return {
        "notebook_bytes": size,
        "typed_s": typed,
        "keystrokes": res["sent"],
        "storage_writes_per_min": writes * per_min,
        "storage_bytes_per_min": nbytes * per_min,
        "writes_after_typing": final_writes,
        "disk_bytes_per_min": (d1 - d0) * per_min,
        "log_bytes_before_typing": log0["logical_bytes"],
        "log_bytes_after_typing": log1["logical_bytes"],
        "log_bytes_after_compaction": log2["logical_bytes"],
        "log_detail": {"before": log0, "after_typing": log1, "after_close": log2},
    }


# -- P6 scale-out over Redis ------------------------------------------------------------------


def _p6_type(
    srv: Server | Cluster,
    pids: list[int],
    targets: list[dict[str, Any]],
    *,
    clients: int,
    rate: float,
    duration: float,
    window: float,
    apply: bool,
    typing_targets: list[int] | None = None,
) -> dict[str, Any]:
    """One loadgen "type" run; client k on ``targets[k % len(targets)]``; + servers' CPU."""
    cfg: dict[str, Any] = {
        "mode": "type", "protocol": srv.protocol, "targets": targets, "clients": clients,
        "rate": rate, "duration": duration, "window": window, "drainMs": 5000, "apply": apply,
    }  # fmt: skip
    if typing_targets is not None:
        cfg["typingTargets"] = typing_targets
    gen = Generator(cfg, srv.workdir)
    try:
        gen.expect("connected", timeout=120)
        gen.go()
        gen.expect("typing", timeout=60)
        cpu0 = sum(cpu_seconds(p) for p in pids)
        t0 = time.monotonic()
        typed = gen.expect("typed", timeout=duration + 120)
        elapsed = time.monotonic() - t0
        cpu = sum(cpu_seconds(p) for p in pids) - cpu0
        res = gen.expect("result", timeout=120)
    finally:
        gen.close()
    res["server_cpu_percent"] = 100 * cpu / elapsed
    res["closed"] = typed.get("closed", {})
    return res


def _lat(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: stats.get(k) for k in ("n", "p50", "p99", "max")}


def p6_scaleout(name: str, ctx: Ctx) -> dict[str, Any]:
    """Two instances of ``name`` over a redis-server of their own, against one instance."""
    prof = ctx.prof
    n, rate, duration = prof["p6_editors"], prof["p6_rate"], prof["p6_duration"]
    typists, receivers = prof["p6_typists"], prof["p6_receivers"]
    bound = prof["p6_p99_bound_ms"]
    cells = max(n, typists + receivers)
    nb = notebook(*[f"# editor {i}\n" for i in range(cells)])
    common = {"rate": rate, "duration": duration, "window": prof["p6_window"],
              "apply": bool(ctx.args.apply)}  # fmt: skip

    # 1a. the same editors on one instance (the server's normal single-process setup)
    single_srv = _server(name, ctx, "p6single")
    write_notebook(single_srv.root / "p6.ipynb", nb)
    with single_srv:
        log(f"P6 {name}: {n} editors on one instance")
        single = _p6_type(
            single_srv, [single_srv.pid], [single_srv.target("p6.ipynb")], clients=n, **common
        )

    workdir = ctx.tmp / f"p6cluster-{name}"
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = CLUSTERS[name](workdir)
    steps: list[dict[str, Any]] = []
    with cluster:
        pids = [*cluster.pids, cluster.redis_pid]
        # 1b. editors alternating over the two instances
        write_notebook(cluster.root / "p6.ipynb", nb)
        log(f"P6 {name}: {n} editors over two instances")
        targets = [cluster.target("p6.ipynb", i) for i in range(2)]
        cross = _p6_type(cluster, pids, targets, clients=n, **common)
        # 2. typists on instance 0, receivers on instance 1, stepped rates, a fresh room each
        for offered in prof["p6_steps"]:
            path = f"p6-rate-{offered}.ipynb"
            write_notebook(cluster.root / path, nb)
            log(f"P6 {name}: {offered} updates/s from {typists} typists on instance 0")
            targets = [cluster.target(path, i) for i in range(2)]
            res = _p6_type(
                cluster, pids, targets, clients=2 * max(typists, receivers),
                rate=offered / typists, duration=prof["p6_step_duration"],
                window=prof["p6_window"], apply=bool(ctx.args.apply), typing_targets=[0],
            )  # fmt: skip
            on_b = res["byTarget"][1]
            sent_rate = res["sent"] / res["typedSeconds"]
            recv_rate = on_b["receivedWhileTyping"] / on_b["clients"] / res["typedSeconds"]
            lat = res["latencyMsByKind"]["cross"]
            p99 = lat["p99"]
            expected = res["sent"] * on_b["clients"]
            step = {
                "offered_per_s": offered,
                "sent_per_s": sent_rate,
                "received_per_s": recv_rate,
                "cross_latency_ms": _lat(lat),
                "lost_cross_deliveries": expected - lat["n"],
                "server_cpu_percent": res["server_cpu_percent"],
                "generator_cpu_percent": res["generatorCpuPercent"],
                "closed": res["closed"],
            }
            step["sustained"] = bool(
                recv_rate >= 0.95 * sent_rate
                and sent_rate >= 0.95 * offered
                and p99 is not None
                and p99 <= bound
                and step["lost_cross_deliveries"] == 0
            )
            log(
                f"P6 {name} {offered}/s: sent {sent_rate:.0f}/s, received {recv_rate:.0f}/s, "
                f"cross p99 {p99} ms, sustained {step['sustained']}"
            )
            steps.append(step)  # every step runs: a noisy miss does not hide the next ones
    s99 = single["latencyMs"]["p99"]
    c = cross["latencyMsByKind"]["cross"]
    passed = [st["offered_per_s"] for st in steps if st["sustained"]]
    return {
        "editors": n,
        "rate": rate,
        "seconds": duration,
        "single": _lat(single["latencyMs"]),
        "cross": _lat(c),
        "same_in_two_instances": _lat(cross["latencyMsByKind"]["same"]),
        "cross_over_single_p99": c["p99"] / s99 if c["p99"] is not None and s99 else None,
        "cross_minus_single_p99_ms": c["p99"] - s99
        if c["p99"] is not None and s99 is not None
        else None,
        "lost_cross_deliveries": cross["sent"] * (n - 1) - cross["latencyMs"]["n"],
        "single_server_cpu_percent": single["server_cpu_percent"],
        "two_instances_cpu_percent": cross["server_cpu_percent"],
        "steps": steps,
        "p99_bound_ms": bound,
        "max_sustained_per_s": max(passed) if passed else 0,
        "load_avg": os.getloadavg(),
    }


SCENARIOS: dict[str, Callable[[str, Ctx], dict[str, Any]]] = {
    "p2": p2_scale,
    "p3": p3_open,
    "p5": p5_writes,
    "p6": p6_scaleout,
}


# -- report -------------------------------------------------------------------------------------

# (label, scenario, path in the result, lower is better)
METRICS: list[tuple[str, str, tuple[str, ...], bool]] = [
    ("P1 latency p50 ms", "p1", ("latency_ms", "p50"), True),
    ("P1 latency p99 ms", "p1", ("latency_ms", "p99"), True),
    ("P1 latency max ms", "p1", ("latency_ms", "max"), True),
    ("P1 deliveries/s", "p1", ("deliveries_per_s",), False),
    ("P1 clients closed by server", "p1", ("clients_closed_by_server",), True),
    ("P1 server CPU %", "p1", ("server_cpu_percent",), True),
    ("P1 generator CPU %", "p1", ("generator_cpu_percent",), True),
    ("P1 generator loop lag p99 ms", "p1", ("generator_event_loop_p99_ms",), True),
    ("P1 server loop stalls >10 ms", "p1", ("server_loop_stalls_over_10ms",), True),
    ("P2 RSS/room KiB", "p2", ("rss_per_room_kib", "median"), True),
    ("P2 RSS/connection KiB", "p2", ("rss_per_connection_kib", "median"), True),
    ("P2 connections reached", "p2", ("max_connections",), False),
    ("P2 storm: clients admitted", "p2", ("admitted",), False),
    ("P2 storm: admission s", "p2", ("admission_s",), True),
    ("P2 storm: admissions/s", "p2", ("admissions_per_s",), False),
    ("P5 storage writes/min", "p5", ("storage_writes_per_min",), True),
    ("P5 storage MB/min", "p5", ("storage_bytes_per_min",), True),
    ("P5 disk MB/min (process)", "p5", ("disk_bytes_per_min",), True),
    ("P5 log KB after typing", "p5", ("log_bytes_after_typing",), True),
    ("P5 log KB after compaction", "p5", ("log_bytes_after_compaction",), True),
    ("P6 one instance p50 ms", "p6", ("single", "p50"), True),
    ("P6 one instance p99 ms", "p6", ("single", "p99"), True),
    ("P6 two instances, cross p50 ms", "p6", ("cross", "p50"), True),
    ("P6 two instances, cross p99 ms", "p6", ("cross", "p99"), True),
    ("P6 two instances, same-instance p99 ms", "p6", ("same_in_two_instances", "p99"), True),
    ("P6 cross p99 / one-instance p99", "p6", ("cross_over_single_p99",), True),
    ("P6 cross p99 - one-instance p99 ms", "p6", ("cross_minus_single_p99_ms",), True),
    ("P6 cross deliveries lost", "p6", ("lost_cross_deliveries",), True),
    ("P6 server CPU % one instance", "p6", ("single_server_cpu_percent",), True),
    ("P6 server CPU % two instances + redis", "p6", ("two_instances_cpu_percent",), True),
    ("P6 max sustained updates/s, one room", "p6", ("max_sustained_per_s",), False),
]


def _dig(d: Any, path: tuple[str, ...]) -> Any:
    if len(path) >= 5 and path[2:3] == ("step",):  # P6 rate steps: (server, p6, step, rate, key)
        for st in _dig(d, (*path[:2], "steps")) or []:
            if str(st["offered_per_s"]) == path[3]:
                return st["cross_latency_ms"]["p99"] if path[4] == "p99" else st.get(path[4])
        return None
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _scale(label: str, v: float) -> float:
    if "MB/min" in label:
        return v / MB
    if "KB" in label:
        return v / 1000
    return v


def metric_rows(results: dict[str, Any], servers: list[str]) -> list[dict[str, Any]]:
    rows = []
    sizes = sorted(
        {k for s in servers for k in (_dig(results, (s, "p3", "by_size")) or {})},
        key=lambda k: float(k[:-2]),
    )
    metrics = list(METRICS)
    for size in sizes:
        metrics.append((f"P3 open {size} s", "p3", ("by_size", size, "open_s", "median"), True))
    for size in sizes:
        metrics.append(
            (f"P4 RSS/ipynb {size}", "p3", ("by_size", size, "rss_ratio", "median"), True)
        )
    for size in sizes:
        at = ("by_size", size, "rss_ratio_at_0_5s", "median")
        metrics.append((f"P4 RSS/ipynb {size} 0.5 s after open", "p3", at, True))
    rates = sorted(
        {st["offered_per_s"] for s in servers for st in (_dig(results, (s, "p6", "steps")) or [])}
    )
    for rate in rates:
        for label, key, lower in (("received/s", "received_per_s", False),
                                  ("cross p99 ms", "p99", True)):  # fmt: skip
            metrics.append((f"P6 {rate}/s offered: {label}", "p6", ("step", str(rate), key), lower))
    for label, scen, path, lower in metrics:
        values = {}
        spreads = {}
        for s in servers:
            v = _dig(results, (s, scen, *path))
            values[s] = _scale(label, v) if isinstance(v, (int, float)) else None
            if path[-1] == "median":
                sp = _dig(results, (s, scen, *path[:-1]))
                if sp and sp.get("n", 0) > 1:
                    spreads[s] = (_scale(label, sp["min"]), _scale(label, sp["max"]))
            elif path == ("latency_ms", "p99"):
                sp = _dig(results, (s, scen, "p99_by_round_ms"))
                if not sp or sp.get("n", 0) < 2:
                    sp = _dig(results, (s, scen, "p99_by_window_ms"))
                if sp and sp.get("n", 0) > 1:
                    spreads[s] = (sp["min"], sp["max"])
        if all(v is None for v in values.values()):
            continue
        rows.append(
            {"metric": label, "lower_is_better": lower, "values": values, "spread": spreads}
        )
    return rows


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def _cell(row: dict[str, Any], server: str) -> str:
    text = _fmt(row["values"].get(server))
    if server in row["spread"]:
        lo, hi = row["spread"][server]
        text += f" [{_fmt(lo)}-{_fmt(hi)}]"
    return text


def table(rows: list[dict[str, Any]], servers: list[str]) -> str:
    peers = [s for s in servers if s != "cs3collab"]
    head = ["metric", "cs3collab"]
    for p in peers:
        head += [p, f"cs3/{p[:7]}"]
    lines = [head]
    for row in rows:
        vals = row["values"]
        line = [row["metric"] + ("" if row["lower_is_better"] else " (higher=better)")]
        line.append(_cell(row, "cs3collab"))
        for p in peers:
            line.append(_cell(row, p))
            a, b = vals.get("cs3collab"), vals.get(p)
            line.append(f"{a / b:.2f}x" if a is not None and b not in (None, 0) else "-")
        lines.append(line)
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = []
    for i, line in enumerate(lines):
        out.append("  ".join(str(c).ljust(widths[j]) for j, c in enumerate(line)))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) * 1024
    versions: dict[str, str] = {}
    try:
        out = subprocess.run(
            [str(bench_python_bin("pip")), "list", "--format=json"],
            capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip
        want = {"jupyter-server-ydoc", "jupyter-collaboration", "jupyter_server", "pycrdt",
                "pycrdt-websocket", "pycrdt-store", "tornado"}  # fmt: skip
        for p in json.loads(out):
            if p["name"] in want:
                versions[f"peer-venv:{p['name']}"] = p["version"]
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    from importlib.metadata import version

    for pkg in ("pycrdt", "uvicorn", "websockets", "fastapi", "uvloop"):
        try:
            versions[pkg] = version(pkg)
        except Exception:
            pass
    lock = json.loads((BENCH_DIR / "node" / "package-lock.json").read_text())["packages"]
    for pkg in ("@hocuspocus/server", "yjs", "ws"):
        versions[pkg] = lock.get(f"node_modules/{pkg}", {}).get("version", "?")
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
        "versions": versions,
        "load_avg_at_start": os.getloadavg(),
    }


def plot(json_path: Path) -> Path | None:
    png = json_path.with_suffix(".png")
    try:
        subprocess.run(
            [str(bench_python_bin()), str(BENCH_DIR / "plot.py"), str(json_path), str(png)],
            check=True, timeout=120,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        log(f"plot failed: {exc}")
        return None
    return png


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="small sizes, under 2 minutes")
    mode.add_argument("--smoke", action="store_true", help="seconds per scenario, cs3collab only")
    ap.add_argument("--servers", help="comma list of cs3collab,jupyter,hocuspocus")
    ap.add_argument(
        "--scenarios",
        default="p1,p2,p3,p5",
        help="comma list of p1,p2,p3,p5,p6 (p4 is in p3; p6 needs redis-server)",
    )
    ap.add_argument("--editors", type=int, help="P1 editors")
    ap.add_argument("--duration", type=float, help="P1 seconds of typing")
    ap.add_argument("--rate", type=float, help="P1 keystrokes per second per editor")
    ap.add_argument("--p5-duration", type=float, help="P5 seconds of typing")
    ap.add_argument("--sizes", help="P3 notebook sizes in MB, comma list")
    ap.add_argument("--repeat", type=int, help="P3 opens per size")
    ap.add_argument("--p2-steps", help="P2 steps as ROOMSxCLIENTS comma list, e.g. 20x5,100x5")
    ap.add_argument(
        "--p2-storm", type=int,
        help="P2 clients connecting at once per step (default 0: all of the step at once)",
    )  # fmt: skip
    ap.add_argument("--generators", type=int, default=1, help="P1 load generator processes")
    ap.add_argument("--rounds", type=int, help="P1 rounds per server (interleaved; duration split)")
    ap.add_argument(
        "--apply", action="store_true",
        help="P1 receivers apply every update to their Y.Doc (default: parse its clocks only)",
    )  # fmt: skip
    ap.add_argument(
        "--profile", action="store_true", help="py-spy the hub during P1 (bench/results/p1.svg)"
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)

    prof = dict(PROFILES["smoke" if args.smoke else "quick" if args.quick else "default"])
    if args.servers:
        prof["servers"] = args.servers.split(",")
    for key, attr in (("p1_editors", "editors"), ("p1_duration", "duration"), ("p1_rate", "rate"),
                      ("p5_duration", "p5_duration"), ("p3_repeat", "repeat"),
                      ("p1_rounds", "rounds")):  # fmt: skip
        if getattr(args, attr) is not None:
            prof[key] = getattr(args, attr)
    if args.sizes:
        prof["p3_sizes_mb"] = [float(s) if "." in s else int(s) for s in args.sizes.split(",")]
    if args.p2_steps:
        prof["p2_steps"] = [[int(x) for x in s.split("x")] for s in args.p2_steps.split(",")]
    if args.p2_storm is not None:
        prof["p2_storm"] = args.p2_storm
    scenarios = args.scenarios.split(",")
    servers = prof["servers"]
    unknown = [s for s in servers if s not in SERVERS]
    if unknown:
        ap.error(f"unknown servers {unknown}")

    ensure_node()
    if any(s != "cs3collab" for s in servers) or args.profile or not args.no_plot:
        ensure_bench_venv()

    started = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results: dict[str, Any] = {s: {} for s in servers}
    report: dict[str, Any] = {"started": stamp, "profile": prof,
                              "args": vars(args) | {"out": str(args.out)},
                              "machine": machine(), "results": results}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cs3collab-bench-") as tmpdir:
        ctx = Ctx(prof, args, Path(tmpdir))
        if "p5" in scenarios:
            # One typist per server at 5 keys/s is light: the three run side by side.
            log(
                f"P5 write amplification, {prof['p5_duration']:.0f} s of typing, "
                "servers in parallel"
            )
            ctx.notebook_file(prof["p5_notebook_mb"])  # once, before the threads
            with ThreadPoolExecutor(len(servers)) as pool:
                futures = {s: pool.submit(_guard, p5_writes, s, ctx) for s in servers}
                for s, fut in futures.items():
                    results[s]["p5"] = fut.result()
        if "p1" in scenarios:
            rounds: dict[str, list[dict[str, Any]]] = {s: [] for s in servers}
            for rnd in range(prof["p1_rounds"]):
                for s in servers:
                    log(f"P1 {s} round {rnd + 1}/{prof['p1_rounds']}")
                    rounds[s].append(_guard(p1_fanout, s, ctx, rnd))
            for s in servers:
                results[s]["p1"] = p1_merge(rounds[s], ctx)
        for scen in ("p3", "p2", "p6"):
            if scen not in scenarios:
                continue
            for s in servers:
                if scen == "p6" and s not in CLUSTERS:
                    log(f"P6 {s}: no two-instance setup, skipped")
                    continue
                log(f"{scen.upper()} {s}")
                t0 = time.monotonic()
                results[s][scen] = _guard(SCENARIOS[scen], s, ctx)
                log(f"{scen.upper()} {s} done in {time.monotonic() - t0:.0f} s")
    report["seconds"] = time.time() - started
    report["load_avg_at_end"] = os.getloadavg()
    rows = metric_rows(results, servers)
    report["table"] = rows
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"{stamp}.json"
    json_path.write_text(json.dumps(report, indent=1, default=str))
    print()
    print(table(rows, servers))
    print(
        "\nratios are cs3collab / peer (below 1x is better for cs3collab, "
        "except where higher=better);"
        " [a-b] = spread: min-max over P3 repeats, P2 steps, P1 rounds (or P1 p99 per "
        f"{prof['p1_window']:.0f} s window when there is one round)"
    )
    for s in servers:
        p6 = results[s].get("p6")
        if p6 and "error" not in p6 and p6["cross_over_single_p99"] is not None:
            ok1 = p6["cross_over_single_p99"] <= 2 and p6["cross_minus_single_p99_ms"] <= 5
            ok2 = p6["max_sustained_per_s"] >= 1000
            print(
                f"P6 goals, {s}: cross p99 {p6['cross']['p99']:.1f} ms vs one instance "
                f"{p6['single']['p99']:.1f} ms (<= 2x and <= +5 ms: {'met' if ok1 else 'MISSED'}); "
                f"sustained {p6['max_sustained_per_s']}/s (>= 1,000: {'met' if ok2 else 'MISSED'})"
            )
    errors = {s: {k: v["error"] for k, v in r.items() if isinstance(v, dict) and "error" in v}
              for s, r in results.items()}  # fmt: skip
    for s, errs in errors.items():
        for scen, err in errs.items():
            print(f"!! {s} {scen}: {err}")
    if not args.no_plot:
        png = plot(json_path)
        if png:
            print(f"plot: {png}")
    la0, la1 = report["machine"]["load_avg_at_start"][0], report["load_avg_at_end"][0]
    busy = "  (other work was running: expect noise)" if max(la0, la1) > 1.5 else ""
    m = report["machine"]
    print(
        f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; "
        f"load average {la0:.2f} at start, {la1:.2f} at end{busy}"
    )
    print(f"results: {json_path}  ({report['seconds']:.0f} s)")
    return 1 if any(errors.values()) else 0


def _guard(fn: Callable[..., dict[str, Any]], name: str, ctx: Ctx, *more: Any) -> dict[str, Any]:
    try:
        return fn(name, ctx, *more)
    except Exception as exc:  # one failing server must not lose the others' numbers
        log(f"{fn.__name__} {name} failed: {exc!r}")
        return {"error": repr(exc)[:2000]}


if __name__ == "__main__":
    sys.exit(main())
