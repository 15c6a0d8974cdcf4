"""KServe on a real cluster: InferenceService create -> Ready, and the autoscaling check's duration.

    python benchmarks/kserve_serving.py [--runs 2] [--target node] [pytest args...]

(node: with manifests/values/node.yaml unless --values is given)

Each run is `pytest suites/ --target TARGET -k "<the isvc and autoscaling checks>"` in a subprocess,
as a user would start it: the cluster comes up, KServe is installed, the model is trained,
registered and served, the two checks run, everything is torn down. Figures per run:

- InferenceService create -> Ready: measured by the provider from the apply of the InferenceService
  to its Ready condition (storage initializer download + predictor start + model load), read from
  the report's notes;
- KServe's binaries, images and install: the provider's timings (a cold run builds what is missing;
  a warm run reuses the cached binaries and image archives);
- the 3.4-autoscaling-load check: its call duration (pytest --durations), and its verdict.

A run is labelled cold when it built KServe's binaries or images, warm otherwise; for a cold figure clear `~/.cache/mlops-acceptance/images/kserve-*`
and `mlserver-*` (and bin/kserve-*, bin/cert-manager-*) first for a truly cold figure.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKS = "test_inference_service_ready_with_url or test_replicas_follow_the_load"  # in the two modules below
_DURATION = re.compile(r"^([\d.]+)s (setup|call|teardown)\s+(\S+)")
_READY = re.compile(r"InferenceService \S+: created -> Ready in ([\d.]+) s")
_TIMING = re.compile(r"(kserve-[a-z-]+) ([\d.]+) s")


def one_run(target: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as reports:
        cmd = [sys.executable, "-m", "pytest", "suites/test_k8s_34_kserve.py", "suites/test_k8s_34_autoscaling.py", "-q", "-p", "no:randomly", "--target", target,
               "--durations=0", "--durations-min=0", "--report-dir", reports, "-k", CHECKS, *extra]
        started = time.monotonic()
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.monotonic() - started
        signoff = Path(reports) / "signoff.json"
        report = json.loads(signoff.read_text()) if signoff.exists() else {}
    notes = " ".join(report.get("notes", []))
    ready = _READY.search(notes)
    calls = {name.rsplit("::", 1)[-1]: float(d) for d, phase, name in
             (m.groups() for m in map(_DURATION.match, done.stdout.splitlines()) if m) if phase == "call"}
    statuses = {c["id"]: c["status"] for c in report.get("criteria", [])}
    return {"wall": wall, "isvc_ready_s": float(ready.group(1)) if ready else None,
            "autoscaling_s": calls.get("test_replicas_follow_the_load"),
            "isvc_status": statuses.get("3.4-isvc-ready"), "autoscaling_status": statuses.get("3.4-autoscaling-load"),
            "kserve_timings": dict(_TIMING.findall(notes)),
            "code": done.returncode, "tail": done.stdout.strip().splitlines()[-1:] or [done.stderr[-300:]]}


def _s(value) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--target", default="node")
    args, extra = parser.parse_known_args()
    if args.target == "node" and "--values" not in extra:
        extra = ["--values", "manifests/values/node.yaml", *extra]  # what tox -e node runs
    for i in range(args.runs):
        r = one_run(args.target, extra)
        # Cold or warm by what the run did, not by its position: it built binaries or images.
        built = any(float(r["kserve_timings"].get(k, 0)) > 5 for k in ("kserve-binaries", "kserve-python-images"))
        label = "cold: built KServe's binaries/images" if built else "warm: cached binaries and images"
        print(f"run {i + 1} ({label}): InferenceService create -> Ready {_s(r['isvc_ready_s'])} "
              f"(3.4-isvc-ready {r['isvc_status']}); 3.4-autoscaling-load check {_s(r['autoscaling_s'])} "
              f"({r['autoscaling_status']}); KServe timings {r['kserve_timings'] or 'n/a'}; whole run "
              f"{r['wall']:.0f} s, exit {r['code']}; {r['tail'][0] if r['tail'] else ''}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
