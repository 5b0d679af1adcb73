"""``python -m bench [--quick] [--only NAME ...]``: run the benchmarks, print one table, write results/latest.md.

Run from the repository root with the venv's python (``.venv/bin/python -m bench``). Everything is local:
Twilio is faked on loopback (devtools' TwilioSandbox, and an HTTPS stand-in for the connection-reuse run).
Benchmarks print figures and exit 0; a goal missed is reported in the table, not as a failure. Exit 1 only
when a benchmark could not run at all.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from pathlib import Path

from bench import broadcasts, cold, failure, quota, reuse, state
from bench.common import ACCOUNT_SID, AUTH_TOKEN, BENCH, Table, machine_description

# name -> (run it, given the table, the sandbox and quick)
BENCHMARKS = {
    "cold": lambda table, sandbox, quick: cold.run(table, sandbox, runs=3 if quick else 15),
    "reuse": lambda table, sandbox, quick: reuse.run(table, invocations=20 if quick else 100),
    "failure": lambda table, sandbox, quick: failure.run(table, sandbox, app_runs=1 if quick else 3,
                                                         naive_bound=3.0 if quick else 10.0),
    "state": lambda table, sandbox, quick: state.run(table, sandbox, sends=20 if quick else 200,
                                                     cold_runs=3 if quick else 10),
    "quota": lambda table, sandbox, quick: quota.run(table, sandbox, rounds=2 if quick else 4,
                                                     sustain_seconds=2 if quick else 4),
    "broadcasts": lambda table, sandbox, quick: broadcasts.run(table, sandbox, recipients=40 if quick else 600, rate=20,
                                                               admitted=500 if quick else 10_000,
                                                               messages=10 if quick else 50),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke mode: few runs, small loads (20–30 s)")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), metavar="NAME",
                        help=f"run only these benchmarks ({', '.join(BENCHMARKS)})")
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "latest.md",
                        help="where to write the Markdown report (default: bench/results/latest.md)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # The app logs warnings (e.g. the 504 of the failure run); keep them off the benchmark's output.
    logging.getLogger().addHandler(logging.NullHandler())
    from devtools.sandbox import TwilioSandbox

    machine = machine_description()
    table = Table()
    failed = False
    started = time.perf_counter()
    sandbox = TwilioSandbox(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, host="127.0.0.1", port=0).start()
    try:
        for name, run in BENCHMARKS.items():
            if args.only and name not in args.only:
                continue
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            try:
                run(table, sandbox, args.quick)
            except Exception:  # noqa: BLE001 - report it and go on with the others
                failed = True
                table.add(name, "could not run", "error")
                traceback.print_exc()
            print(f"[bench] {name} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    finally:
        sandbox.stop()
    mode = "quick (smoke) mode" if args.quick else "full mode"
    report = (f"# Benchmarks ({mode})\n\n{machine}; total time {time.perf_counter() - started:.0f} s. Ratios are "
              f"measured side by side in this one run; absolute figures depend on the machine.\n\n"
              f"{table.markdown()}\n")
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report, encoding="utf-8")
    print(f"[bench] written to {args.output}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
