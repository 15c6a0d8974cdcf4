"""How long the kwok control plane takes to start, and the 3.4-gpu scheduling checks on 10/100/1000
simulated GPU nodes.

    .venv/bin/python benchmarks/kwok_gpu_scheduling.py [--sizes 10 100 1000] [--gpus-per-node 4]

One kwok cluster (the cached binaries, nothing downloaded) grows from size to size. At each size
the suite's own check functions run, unchanged, against the example InferenceService:
  lands      test_gpu_predictor_lands_only_on_gpu_nodes      (one predictor-like pod placed)
  capacity   test_gpu_requests_beyond_free_capacity_stay_pending
             (fills every free GPU while that takes <= 64 pods, then one more; always one pod asking
              more GPUs than any node has; past 64 pods only the oversize pod)
Printed: control-plane start (kwokctl create -> /readyz ok + default ServiceAccount), seconds to add
and see Ready the nodes of each step, and each check's wall time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fixtures.config import load_values  # noqa: E402
from fixtures.kube.client import Kube  # noqa: E402
from fixtures.kube.cluster import KwokCluster  # noqa: E402
from fixtures.kube.manifests import apply_order, render_manifests  # noqa: E402
from fixtures.kube.deploy import Deployer  # noqa: E402
from fixtures.kube.providers.kwok import KwokProvider  # noqa: E402
from fixtures.kube.simulation import kserve_crds  # noqa: E402
import suites.test_k8s_34_kserve as m34  # noqa: E402


class _Evidence(list):
    def __call__(self, text):
        self.append(str(text))


def timed(fn, *args) -> tuple[float, str]:
    evidence = _Evidence()
    started = time.monotonic()
    try:
        fn(*args, evidence)
        outcome = "passed"
    except AssertionError as exc:
        outcome = f"FAILED: {exc}"
    return time.monotonic() - started, outcome if outcome != "passed" else "passed"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--gpus-per-node", type=int, default=4)
    args = ap.parse_args(argv)

    values = load_values()
    started = time.monotonic()
    cluster = KwokCluster.create(timeout=180)
    total_start = time.monotonic() - started
    print(f"control plane: kwokctl create {cluster.timings['kwokctl-create']:.2f} s, ready (readyz + default "
          f"ServiceAccount) {cluster.timings['control-plane-ready']:.2f} s, KwokCluster.create {total_start:.2f} s")
    kube = Kube(cluster.api_client(), name=cluster.name, simulated=KwokProvider.simulated, cluster=cluster,
                limitations=KwokProvider.limitations)
    try:
        cluster.add_nodes(2)
        crds, _ = kserve_crds(values.kserve_version)
        kserve = [o for o in apply_order(render_manifests(values))
                  if o["kind"] in ("ServiceAccount", "Secret", "ClusterServingRuntime", "InferenceService")
                  and o["metadata"].get("namespace") in (None, values.inference_service_namespace)]
        Deployer(kube).apply(crds + kserve)
        stack = SimpleNamespace(values=values, k8s=kube, served_model=None)
        have = 0
        print(f"{'GPU nodes':>9}  {'add+Ready s':>11}  {'lands s':>8}  {'capacity s':>10}  outcome")
        for size in sorted(args.sizes):
            t0 = time.monotonic()
            cluster.add_gpu_nodes(size - have, gpus=args.gpus_per_node, labels=dict(values.kserve_gpu_node_selector),
                                  timeout=max(60, size * 0.5))
            added = time.monotonic() - t0
            have = size
            lands, o1 = timed(m34.test_gpu_predictor_lands_only_on_gpu_nodes, stack)
            capacity, o2 = timed(m34.test_gpu_requests_beyond_free_capacity_stay_pending, stack)
            outcome = o1 if o1 != "passed" else o2
            fill = size * args.gpus_per_node // max(1, values.inference_gpu_count)
            mode = "fill + oversize" if fill <= m34.MAX_FILL_PODS else "oversize only"
            print(f"{size:>9}  {added:>11.2f}  {lands:>8.2f}  {capacity:>10.2f}  {outcome} ({mode})", flush=True)
    finally:
        kube.close()
        cluster.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
