"""Time `dino-course grade` on the class of 40 of the instructor edition's acceptance test.

    python benchmarks/batch_grading.py [--jobs 2] [--time-limit 3] [--modes reuse,no-reuse]

Writes the 40 submissions of `tests/maintainer/class_submissions.py` (39 from it, the 40th the
reference archive once more) into a temporary folder and grades them with the real command,
once per mode:

- `reuse` (the default of `dino-course grade`): identical lesson files are graded once per batch;
  this class is mostly copies of the reference, so most lessons come from the cache;
- `no-reuse` (`--no-reuse`): every submission graded in full, which is what a class of 40
  distinct submissions costs.

It prints one Markdown table: total wall time, grading time per submission (median, slowest and
which), worker processes started, and the machine's load average before and after (a busy
machine inflates every figure; quote them with it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _class_module():
    path = REPO_ROOT / "tests" / "maintainer" / "class_submissions.py"
    spec = importlib.util.spec_from_file_location("class_submissions", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (its dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def run(mode: str, submissions: Path, work: Path, jobs: int, time_limit: str) -> dict:
    output = work / f"graded-{mode}"
    load_before = os.getloadavg()[0]
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "dino_course", "grade", str(submissions), "--output", str(output), "--jobs", str(jobs),
         "--time-limit", time_limit, *(["--no-reuse"] if mode == "no-reuse" else [])],
        cwd=work, capture_output=True, text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("DINO_COURSE_")}, "PYTHONPATH": str(REPO_ROOT)},
    )
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"dino-course grade failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    records = {p.stem: json.loads(p.read_text())["result"] for p in (output / "results").glob("*.json")}
    seconds = {student: r["seconds"] for student, r in records.items()}
    slowest = max(seconds, key=seconds.get)
    return {
        "mode": mode, "wall": wall, "median": statistics.median(seconds.values()), "slowest": slowest,
        "slowest_s": seconds[slowest], "workers": sum(r["workers"] for r in records.values()),
        "load": (load_before, os.getloadavg()[0]), "n": len(records),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--time-limit", default="3", help="seconds per exercise (the acceptance test uses 3)")
    parser.add_argument("--modes", default="reuse,no-reuse")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO_ROOT))
    classroom = _class_module()
    work = Path(tempfile.mkdtemp(prefix="dino-batch-benchmark-"))
    try:
        submissions = work / "submissions"
        classroom.make_class(submissions, REPO_ROOT / "solutions", REPO_ROOT / "dino_course")
        shutil.copy(submissions / "s01-reference.zip", submissions / "s40-reference-again.zip")
        rows = [run(mode, submissions, work, args.jobs, args.time_limit) for mode in args.modes.split(",")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| mode | submissions | jobs | total wall | per submission: median | slowest | worker processes "
          "| load before / after |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: | --- |")
    for row in rows:
        print(
            f"| {row['mode']} | {row['n']} | {args.jobs} | {row['wall']:.0f} s | {row['median']:.1f} s | "
            f"{row['slowest_s']:.0f} s ({row['slowest']}) | {row['workers']} | "
            f"{row['load'][0]:.1f} / {row['load'][1]:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
