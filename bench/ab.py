"""Two revisions side by side: the server's CPU per request for the same dashboard requests.

    .venv/bin/python bench/ab.py --base HEAD            # the working tree against the last commit
    .venv/bin/python bench/ab.py --base main~3 --path page
    .venv/bin/python bench/ab.py --base HEAD --base-only  # the same code twice: the harness's own spread

On a shared machine the same code answers a third slower from one minute to the next, so figures
from two runs of bench/dashboard.py cannot tell a 10% change from the machine. Here both revisions
serve at once, each in its own uvicorn process (one worker) on bench/dashboard.py's scratch world
(the demo warehouse, 12 widgets, logged-in viewers); the client sends each the same requests in
alternating rounds, one request at a time, so the machine's changes fall on both alike. The figure
is each process's CPU time per request (Linux's /proc), printed beside the base's as reference,
with their ratio. Run with --base-only first to see the harness's own spread (the same code on
both sides: within a few percent here). The base is a
git worktree of --base in a temporary folder, using this checkout's virtualenv. Warm requests
only: the results cache is filled before the clock starts.
"""

import argparse
import asyncio
import contextlib
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from _keepalive import Connection
from _machine import process_cpu_seconds
from dashboard import HTMX, ROOT, Line, Served, World, ms, scratch, server, table_print

PATHS = {
    "fragment": lambda world: [f"/dashboards/widgets/{pk}/" for pk in world.widget_ids],
    "page": lambda world: [f"/dashboards/{world.dashboard_id}/"],
    "login": lambda world: ["/accounts/login/"],
}


@dataclass
class Side:
    name: str
    served: Served
    cpu_seconds: float = 0.0
    requests: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_seconds / self.requests


@contextlib.contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """A checkout of `revision` in a temporary folder, sharing this checkout's virtualenv."""
    with tempfile.TemporaryDirectory(prefix="datamind-bench-ab-") as folder:
        tree = Path(folder) / "tree"
        add = ["git", "worktree", "add", "--detach", "-q", str(tree), revision]
        subprocess.run(add, cwd=ROOT, check=True)
        try:
            (tree / ".venv").symlink_to(ROOT / ".venv")
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)


async def alternate(sides: list[Side], world: World, paths: list[str], rounds: int, per_round: int) -> None:
    """Each round sends `per_round` requests to each side in turn, the order flipped every round."""
    headers = HTMX if paths[0].startswith("/dashboards/widgets/") else None
    connections = {side.name: Connection(side.served.url, {"Cookie": world.cookies[0]}) for side in sides}
    for side in sides:  # warm: results cached, templates compiled, the pool's connections open
        for path in paths * 3:
            await connections[side.name].get(path, headers)
    for round_number in range(rounds):
        for side in sides if round_number % 2 == 0 else sides[::-1]:
            connection = connections[side.name]
            before = process_cpu_seconds(side.served.pid)
            for n in range(per_round):
                elapsed, _ = await connection.get(paths[n % len(paths)], headers)
                side.latencies.append(elapsed)
            side.cpu_seconds += process_cpu_seconds(side.served.pid) - before
            side.requests += per_round
    for connection in connections.values():
        await connection.close()


def main(base: str, path: str, rounds: int, per_round: int, base_only: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="datamind-bench-ab-") as folder, worktree(base) as base_tree:
        tmp = Path(folder)
        with scratch(tmp, viewers=1, pool=8) as (environment, world):
            new_root = base_tree if base_only else ROOT
            with (
                server(environment, tmp / "base.log", workers=1, root=base_tree) as base_served,
                server(environment, tmp / "new.log", workers=1, root=new_root) as new_served,
            ):
                sides = [Side("base", base_served), Side("new", new_served)]
                asyncio.run(alternate(sides, world, PATHS[path](world), rounds, per_round))
    old, new = sides
    label = f"{base} again" if base_only else "working tree"
    print(f"\n{path}: {label} against {base}, uvicorn with one worker each, {old.requests} requests each\n")
    table_print(
        [
            compared(f"server CPU per request: {label}", new.cpu_ms_per_request, old.cpu_ms_per_request),
            compared(f"latency p50: {label}", *(statistics.median(side.latencies) for side in (new, old))),
        ]
    )


def compared(measure: str, new: float, base: float) -> Line:
    """`new` beside `base`, with their ratio to two places: A/B differences are often a few percent."""
    return Line(measure, ms(new), ms(base), f"{new / base:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="the revision to compare against (default HEAD)")
    parser.add_argument("--path", choices=sorted(PATHS), default="fragment", help="what to request")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=200, help="requests to each side per round")
    parser.add_argument("--base-only", action="store_true", help="serve --base on both sides")
    arguments = parser.parse_args()
    main(arguments.base, arguments.path, arguments.rounds, arguments.per_round, arguments.base_only)
