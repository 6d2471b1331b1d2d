"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): where the hub's time goes.

    python -m bench.profile_summary bench/results/p1.txt [--thread MainThread] [--top 25]

Prints, per thread, the share of samples (inclusive and self) of the hottest functions.
With ``--idle`` recordings, idle samples (epoll/select waits) show up as such.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m.group("file")
    for marker in ("site-packages/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m.group('func')} ({path})"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("raw", type=Path)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--thread", help="only threads whose name contains this")
    args = ap.parse_args()
    per_thread: dict[str, list[tuple[list[str], int]]] = defaultdict(list)
    for line in args.raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        thread = frames[0]
        per_thread[thread].append(([short(f) for f in frames[1:]], int(count)))
    grand = sum(c for rows in per_thread.values() for _, c in rows)
    for thread, rows in sorted(per_thread.items(), key=lambda kv: -sum(c for _, c in kv[1])):
        if args.thread and args.thread not in thread:
            continue
        total = sum(c for _, c in rows)
        incl: Counter[str] = Counter()
        self_: Counter[str] = Counter()
        for frames, count in rows:
            for f in set(frames):
                incl[f] += count
            if frames:
                self_[frames[-1]] += count
        print(f"\n== {thread}: {total} samples ({100 * total / grand:.1f}% of all)")
        print("  inclusive:")
        for f, c in incl.most_common(args.top):
            print(f"    {100 * c / total:5.1f}%  {f}")
        print("  self:")
        for f, c in self_.most_common(args.top):
            print(f"    {100 * c / total:5.1f}%  {f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
