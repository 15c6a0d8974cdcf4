"""How long the kwok control plane takes to start, and the 3.4-gpu scheduling checks on 10 to 10,000
simulated GPU nodes.

    python benchmarks/kwok_gpu_scheduling.py [--sizes 10 1000 10000] [--gpus-per-node 4]

One kwok cluster (the cached binaries, nothing downloaded) grows from size to size. At each size
the suite's own GPU checks (suites/test_k8s_34_gpu.py, found by gpu_checks()) run, unchanged,
against the example InferenceService:
  lands      test_gpu_predictor_lands_only_on_gpu_nodes      (one predictor-like pod placed)
  capacity   test_gpu_requests_beyond_free_capacity_stay_pending
             (fills every free GPU while that takes <= MAX_FILL_PODS pods, then one more; always one pod
              asking more GPUs than any node has; past that only the oversize pod)
Printed: control-plane start (kwokctl create -> /readyz ok + default ServiceAccount), then per size
the seconds to create the new nodes, to see them all Ready (the lifecycle controller has lifted
their not-ready taint), each check's wall time and outcome, and the load average beside them (the
machine may be shared: figures from a busy machine say so).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mlops_acceptance.fixtures.config import load_values  # noqa: E402
from mlops_acceptance.fixtures.kube.client import Kube  # noqa: E402
from mlops_acceptance.fixtures.kube.cluster import KwokCluster  # noqa: E402
from mlops_acceptance.fixtures.kube.deploy import Deployer  # noqa: E402
from mlops_acceptance.fixtures.kube.manifests import apply_order, render_manifests  # noqa: E402
from mlops_acceptance.fixtures.kube.providers.kwok import KwokProvider  # noqa: E402
from mlops_acceptance.fixtures.kube.simulation import kserve_crds  # noqa: E402

CHECKS = ("lands", "capacity")


def gpu_checks() -> dict:
    """The suite's GPU scheduling checks by short name, and the fill limit: the one place that knows
    where they live (they moved once, from test_k8s_34_kserve.py; the smoke test catches the next move)."""
    import mlops_acceptance.suites.test_k8s_34_gpu as gpu
    from mlops_acceptance.suites.kserve_helpers import MAX_FILL_PODS

    return {"lands": gpu.test_gpu_predictor_lands_only_on_gpu_nodes,
            "capacity": gpu.test_gpu_requests_beyond_free_capacity_stay_pending,
            "max_fill_pods": MAX_FILL_PODS}


class Evidence(list):
    """The checks' `evidence` (fixtures/evidence.py), recording into a list."""

    def __call__(self, text, proof: str | None = None, note: str = "") -> None:
        self.append(str(text))
        if proof:
            self.proof(proof, note)

    def proof(self, kind: str, note: str = "") -> None:
        self.append(f"proof {kind}: {note}")


def timed(check, stack) -> tuple[float, str]:
    """(seconds, outcome) of one check: passed, FAILED: why, skipped: why, or ERROR: what."""
    started = time.monotonic()
    try:
        check(stack, Evidence())
        outcome = "passed"
    except AssertionError as exc:
        outcome = f"FAILED: {str(exc)[:300]}"
    except pytest.skip.Exception as exc:
        outcome = f"skipped: {exc}"
    except Exception as exc:  # noqa: BLE001 - a figure line names any error; the benchmark goes on
        outcome = f"ERROR: {type(exc).__name__}: {str(exc)[:300]}"
    return time.monotonic() - started, outcome


def load() -> str:
    return "load average {:.1f}".format(os.getloadavg()[0])


def positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be 1 or more")
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=positive, nargs="+", default=[10, 1000, 10000], help="GPU nodes at each step")
    ap.add_argument("--gpus-per-node", type=positive, default=4)
    args = ap.parse_args(argv)
    checks = gpu_checks()
    # A killed run (timeout, CI) still deletes its cluster: SIGTERM unwinds through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    values = load_values()
    started = time.monotonic()
    cluster = KwokCluster.create(timeout=180)
    print(f"control plane: kwokctl create {cluster.timings['kwokctl-create']:.2f} s, ready (readyz + default "
          f"ServiceAccount) {cluster.timings['control-plane-ready']:.2f} s, KwokCluster.create "
          f"{time.monotonic() - started:.2f} s; {load()}", flush=True)
    kube = Kube(cluster.api_client(), name=cluster.name, simulated=KwokProvider.simulated, cluster=cluster,
                limitations=KwokProvider.limitations)
    failed = False
    try:
        cluster.add_nodes(2)
        crds, _ = kserve_crds(values.kserve_version)
        kserve = [o for o in apply_order(render_manifests(values))
                  if o["kind"] in ("ServiceAccount", "Secret", "ClusterServingRuntime", "InferenceService")
                  and o["metadata"].get("namespace") in (None, values.inference_service_namespace)]
        Deployer(kube).apply(crds + kserve)
        stack = SimpleNamespace(values=values, k8s=kube, served_model=None)
        have = 0
        print(f"{'GPU nodes':>9}  {'create s':>8}  {'Ready s':>8}  {'lands s':>8}  {'capacity s':>10}  {'total s':>8}  "
              "outcome", flush=True)
        for size in sorted(set(args.sizes)):
            step = time.monotonic()
            names = cluster.add_gpu_nodes(size - have, gpus=args.gpus_per_node,
                                          labels=dict(values.kserve_gpu_node_selector), wait=False)
            created = time.monotonic() - step
            cluster.wait_nodes_ready(names, timeout=max(60, size * 0.05))
            ready = time.monotonic() - step - created
            have = size
            took = {name: timed(checks[name], stack) for name in CHECKS}
            outcome = next((o for _, o in took.values() if o != "passed"), "passed")
            failed |= outcome != "passed"
            fill = size * args.gpus_per_node // max(1, values.inference_gpu_count)
            mode = "fill + oversize" if fill <= checks["max_fill_pods"] else "oversize only"
            print(f"{size:>9}  {created:>8.2f}  {ready:>8.2f}  {took['lands'][0]:>8.2f}  {took['capacity'][0]:>10.2f}  "
                  f"{time.monotonic() - step:>8.2f}  {outcome} ({mode}); {load()}", flush=True)
    finally:
        kube.close()
        cluster.delete()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
