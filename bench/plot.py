"""Plot a bench/run.py result file (run with the bench venv's Python, which has matplotlib).

python bench/plot.py bench/results/<stamp>.json [out.png]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = {"cs3collab": "#1f77b4", "jupyter": "#ff7f0e", "hocuspocus": "#2ca02c"}


def main() -> int:
    src = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else src.with_suffix(".png")
    report = json.loads(src.read_text())
    results = report["results"]
    servers = list(results)
    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    fig.suptitle(
        f"cs3collab vs peers — {report['started']} — {report['machine'].get('cpu', '')}, "
        f"{report['machine'].get('cores')} cores",
        fontsize=11,
    )

    # P1 latency
    ax = axes[0][0]
    stats = ["p50", "p99", "max"]
    width = 0.8 / max(1, len(servers))
    for i, s in enumerate(servers):
        lat = (results[s].get("p1") or {}).get("latency_ms") or {}
        vals = [lat.get(k) or 0 for k in stats]
        xs = [j + i * width for j in range(len(stats))]
        ax.bar(xs, vals, width, label=s, color=COLORS.get(s))
        for x, v in zip(xs, vals, strict=True):
            ax.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks([j + width * (len(servers) - 1) / 2 for j in range(len(stats))], stats)
    ax.set_yscale("log")
    ed = report["profile"].get("p1_editors")
    ax.set_title(f"P1 fan-out delivery latency (ms), {ed} editors")
    ax.legend(fontsize=8)

    # P3 cold open
    ax = axes[0][1]
    for s in servers:
        by = (results[s].get("p3") or {}).get("by_size") or {}
        xs, ys, lo, hi = [], [], [], []
        for _size, row in sorted(by.items(), key=lambda kv: float(kv[0][:-2])):
            sp = row["open_s"]
            if sp["median"] is None:
                continue
            xs.append(row["bytes"] / 1e6)
            ys.append(sp["median"])
            lo.append(sp["median"] - sp["min"])
            hi.append(sp["max"] - sp["median"])
        if xs:
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", label=s, color=COLORS.get(s), capsize=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(".ipynb MB")
    ax.set_title("P3 cold open: connect → SyncStep2 (s)")
    ax.legend(fontsize=8)

    # P4 memory
    ax = axes[1][0]
    for s in servers:
        by = (results[s].get("p3") or {}).get("by_size") or {}
        xs, ys = [], []
        for _size, row in sorted(by.items(), key=lambda kv: float(kv[0][:-2])):
            if row["rss_ratio"]["median"] is not None:
                xs.append(row["bytes"] / 1e6)
                ys.append(row["rss_ratio"]["median"])
        if xs:
            ax.plot(xs, ys, marker="o", label=s, color=COLORS.get(s))
    ax.set_xscale("log")
    ax.set_xlabel(".ipynb MB")
    ax.set_title("P4 RSS growth per open notebook / .ipynb size")
    ax.legend(fontsize=8)

    # ratios
    ax = axes[1][1]
    peers = [s for s in servers if s != "cs3collab"]
    labels, data = [], {p: [] for p in peers}
    for row in report.get("table", []):
        a = row["values"].get("cs3collab")
        if a is None:
            continue
        labels.append(row["metric"] + ("" if row["lower_is_better"] else " ↑"))
        for p in peers:
            b = row["values"].get(p)
            data[p].append(a / b if b not in (None, 0) and a not in (None, 0) else float("nan"))
    if peers and labels:
        h = 0.8 / len(peers)
        for i, p in enumerate(peers):
            ys = [j + i * h for j in range(len(labels))]
            ax.barh(ys, data[p], h, label=f"cs3collab / {p}", color=COLORS.get(p))
        ax.set_yticks(
            [j + h * (len(peers) - 1) / 2 for j in range(len(labels))], labels, fontsize=7
        )
        ax.axvline(1, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set_title("ratio cs3collab / peer (log; <1 better unless ↑)")
        ax.legend(fontsize=8)
    else:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
