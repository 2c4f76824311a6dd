"""The model check (issue 19) for minutes instead of seconds, with its figures.

Clients race creates, deletes, spec and status writes, reads and watches of a few names
against a generated server (the SPEC's Device), which is killed with SIGKILL while a volley
of writes is in flight and started again, again and again; afterwards the recorded history
is checked against the storage's own change log (`tests/_support/model_run` says how, and
`tests/_support/model_check` lists the properties). ``tests/e2e/test_model_check.py`` runs
the same for 9 seconds per backend.

Run it from the repository root (the database servers are the machine's own; each run
works in a schema / database of its own and drops it)::

    make model-check MINUTES=2                         # every backend, 2 minutes each
    .venv/bin/python bench/model_check.py --backend file --minutes 5 --seed 7

It prints per backend: requests, writes acknowledged / unanswered / refused, changes in
the log, watch connections and the events they delivered, kills and how long the first
list after each restart took, and the findings by property (a few examples of each); it
exits 1 when there is any finding.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests._support.e2e import make_device_project  # noqa: E402
from tests._support.model_run import RunConfig, RunReport, run_model  # noqa: E402
from tests._support.model_server import BACKENDS  # noqa: E402


def main() -> int:
    args = parse_args()
    backends = list(BACKENDS) if args.backend == "all" else args.backend.split(",")
    seconds = args.minutes * 60
    kills = max(1, round(args.minutes * args.kills_per_minute))
    print(f"model check: {', '.join(backends)}, {seconds:g} s and {kills} kills each, "
          f"seed {args.seed}, {args.names} names, {args.writers} writers", flush=True)
    reports = []
    with tempfile.TemporaryDirectory(prefix="model-check-") as root:
        project = make_device_project(Path(root))
        for n, backend in enumerate(backends):
            config = RunConfig(backend, seconds=seconds, kills=kills, seed=args.seed,
                               names=args.names, writers=args.writers,
                               patience=args.patience, stall_budget=args.stall_budget,
                               read_budget=args.read_budget)
            began = time.monotonic()
            work = Path(root) / f"run-{n}"
            work.mkdir()
            report = run_model(project, "device_api", work, config)
            print(f"\n{report.summary(examples=args.examples)}\n  "
                  f"(run and check took {time.monotonic() - began:.0f} s)", flush=True)
            reports.append(report)
    print_table(reports)
    return 1 if any(r.findings for r in reports) else 0


def print_table(reports: list[RunReport]) -> None:
    head = ("backend", "requests", "acked", "unanswered", "log", "events", "kills",
            "first list max s", "findings")
    rows = [head]
    for r in reports:
        f = r.figures
        firsts = [s for s in f["first_list_seconds"] if s is not None]
        rows.append((r.config.backend, str(f["ops"]), str(f["acked"]), str(f["unknown"]),
                     str(f["log"]), str(f["events"]), str(f["kills"]),
                     f"{max(firsts, default=0):.2f}", str(len(r.findings))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    print()
    for row in rows:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="all",
                        help=f"all, or some of {','.join(BACKENDS)} (comma-separated)")
    parser.add_argument("--minutes", type=float, default=1.0, help="load per backend")
    parser.add_argument("--kills-per-minute", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--names", type=int, default=4, help="resource names raced over")
    parser.add_argument("--writers", type=int, default=6, help="concurrent writers")
    parser.add_argument("--patience", type=float, default=10.0,
                        help="seconds a watch from beyond the log may take to answer an error")
    parser.add_argument("--stall-budget", type=float, default=2.5,
                        help="seconds the first list after a restart may take")
    parser.add_argument("--read-budget", type=float, default=10.0,
                        help="seconds any other read may take (under the full load)")
    parser.add_argument("--examples", type=int, default=3, help="examples per property")
    args = parser.parse_args()
    unknown = set(args.backend.split(",")) - {*BACKENDS, "all"}
    if unknown:
        parser.error(f"unknown backend {', '.join(sorted(unknown))}")
    return args


if __name__ == "__main__":
    sys.exit(main())
