"""How busy the machine was while a benchmark ran: a figure to print beside its latencies, since on
a shared 2-core machine the same code answers slower when the cores are taken."""

import os
from pathlib import Path


def machine_ticks() -> tuple[int, int] | None:
    """All cores' busy and total clock ticks so far, from Linux's /proc/stat (None elsewhere)."""
    try:
        ticks = [int(tick) for tick in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    idle = ticks[3] + ticks[4]  # idle and waiting for I/O
    return sum(ticks) - idle, sum(ticks)


def busy_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def process_cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used so far, from Linux's /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
