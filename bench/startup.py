"""Benchmark: how long `newsletter` takes before it does anything.

Each command runs as a fresh process (the installed console script), interleaved with the
bare interpreter (`python -c pass`) in the same run, several times; medians are compared,
so the figures are milliseconds above what Python itself costs on this machine today.

The real work of `build` and `check` (Builder(...).build(), and writing the files for
`build`) is timed apart: in a fresh process whose imports and settings are already loaded,
the first build (as a command does it: nothing cached yet). Start-up overhead is then the
time above bare minus that work. Targets: `--help` <= 150 ms above bare; `build` and
`check` <= 250 ms above bare plus their work.

Run on purpose (`python bench/startup.py`), never in the test suite. --importtime prints,
for each command, the imports that cost most (from `python -X importtime`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HELP_TARGET_MS = 150.0
COMMAND_TARGET_MS = 250.0

# Runs in a fresh interpreter: imports first (not timed), then the first build, timed.
WORK = """
import json, sys, time
from pathlib import Path
import newsletter.cli
from newsletter.infra.workspace import open_workspace
from newsletter.services.build import Builder, write_build
mode, slug, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
workspace = open_workspace()
before = set(sys.modules)
started = time.perf_counter()
result = Builder(workspace).build(slug)
if mode == "build":
    write_build(result, out)
elapsed = time.perf_counter() - started
late = sorted(set(sys.modules) - before)
print(json.dumps({"ms": elapsed * 1000, "late_imports": late}))
"""


def console_script() -> list[str]:
    script = Path(sys.executable).parent / "newsletter"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "newsletter"]


def sample_workspace(root: Path) -> Path:
    """A copy of the repository's sample workspace: the benchmark writes nothing in REPO."""
    workspace = root / "workspace"
    workspace.mkdir()
    shutil.copy(REPO / "newsletter.toml", workspace / "newsletter.toml")
    for folder in ("issues", "templates"):
        shutil.copytree(REPO / folder, workspace / folder)
    return workspace


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode not in (0, 1):  # 1: the checks found errors, a complete run all the same
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr.decode()}")
    return elapsed


def work(mode: str, slug: str, out: Path, env: dict[str, str], cwd: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", WORK, mode, slug, str(out)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def import_profile(args: list[str], env: dict[str, str], cwd: Path, top: int) -> list[str]:
    """The imports that cost most (cumulative), from `python -X importtime -m newsletter`."""
    command = [sys.executable, "-X", "importtime", "-m", "newsletter", *args]
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split("|"))
        if cumulative.isdigit():
            rows.append((int(cumulative), name))
    rows.sort(reverse=True)
    return [f"{us / 1000:8.1f} ms  {name}" for us, name in rows[:top]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="repetitions of each (median)")
    parser.add_argument("--slug", default="2026-12-welcome", help="issue to build and check")
    parser.add_argument("--importtime", action="store_true", help="print the costly imports")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="newsletter-startup-") as tmp:
        root = Path(tmp)
        workspace = sample_workspace(root)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "PYTHON"))}
        env |= {"NEWSLETTER_WORKSPACE": str(workspace), "COLUMNS": "100"}
        cli = console_script()
        out = root / "out"
        commands = {
            "bare": [sys.executable, "-c", "pass"],
            "--help": [*cli, "--help"],
            "build": [*cli, "build", args.slug, "--out", str(out)],
            "check": [*cli, "check", args.slug],
        }
        for command in commands.values():  # warm-up: bytecode caches, the OS file cache
            timed(command, env, workspace)
        times: dict[str, list[float]] = {name: [] for name in commands}
        works: dict[str, list[float]] = {"build": [], "check": []}
        late: dict[str, set[str]] = {"build": set(), "check": set()}
        for _ in range(args.runs):  # interleaved: a noisy moment hits every command alike
            for name, command in commands.items():
                times[name].append(timed(command, env, workspace))
            for mode in works:
                measured = work(mode, args.slug, root / "work-out", env, workspace)
                works[mode].append(float(measured["ms"]))  # type: ignore[arg-type]
                late[mode] |= set(measured["late_imports"])  # type: ignore[arg-type]

        median = {name: statistics.median(values) for name, values in times.items()}
        bare = median["bare"]
        print(f"{args.runs} runs each, medians; bare interpreter: {bare:.0f} ms")
        print(f"{'command':<10}{'total':>9}{'above bare':>12}{'work':>9}{'start-up':>10}  target")
        verdicts = []
        for name in ("--help", "build", "check"):
            above = median[name] - bare
            done = statistics.median(works[name]) if name in works else 0.0
            startup = above - done
            target = HELP_TARGET_MS if name == "--help" else COMMAND_TARGET_MS
            met = startup <= target
            verdicts.append(met)
            print(
                f"{name:<10}{median[name]:>7.0f}ms{above:>10.0f}ms{done:>7.0f}ms"
                f"{startup:>8.0f}ms  <= {target:.0f} ms {'met' if met else 'NOT met'}"
            )
        for mode, names in late.items():
            if names:
                print(f"imported during {mode}'s work: {', '.join(sorted(names))}")
        spread = {n: (min(v), max(v)) for n, v in times.items()}
        print("range: " + ", ".join(f"{n} {lo:.0f}-{hi:.0f} ms" for n, (lo, hi) in spread.items()))
        if args.importtime:
            for name, command in commands.items():
                if name == "bare":
                    continue
                cli_args = command[len(cli) :]
                print(f"\nimports of `newsletter {' '.join(cli_args)}`:")
                for row in import_profile(cli_args, env, workspace, 15):
                    print("  " + row)
        sys.exit(0 if all(verdicts) else 1)


if __name__ == "__main__":
    main()
