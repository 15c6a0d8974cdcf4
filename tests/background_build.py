"""Start the real node's builds (`python -m mlops_acceptance.fixtures.node prebuild`) when a test run will need them.

Why: on a cold cache the real-node tests spent most of CI's time building, one item after the
other as each fixture asked for it (Go builds, then images, then KServe's), on one worker. Started
at collection, the prebuild compiles Go and builds the images side by side while the tests that
need neither run; a test that needs an item waits on its file lock and reuses it.

Started only when the collected tests include a real-node module and the host can run a node
(root, Linux, its Debian packages); TESTS_PREBUILD=0 turns it off. Its lines go to the terminal
as `[acceptance] ...`. It runs in a process group of its own, ended at the end of the run (and
it ends itself when the run that started it is killed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from mlops_acceptance.fixtures import progress

ROOT = Path(__file__).resolve().parent.parent


class BackgroundBuild:
    """`node_modules`: the test modules whose fixtures build the node's binaries and images;
    `kserve_modules`: those that also build KServe's."""

    def __init__(self, node_modules: set[str], kserve_modules: set[str]) -> None:
        self.node_modules, self.kserve_modules = node_modules, kserve_modules
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def wanted(self, nodeids: list[str]) -> tuple[bool, bool]:
        """(needs the node's builds, needs KServe's) for these collected test ids."""
        modules = {Path(nodeid.split("::", 1)[0].split("@", 1)[0]).name for nodeid in nodeids}
        return bool(modules & self.node_modules), bool(modules & self.kserve_modules)

    def start(self, nodeids: list[str]) -> None:
        node, kserve = self.wanted(nodeids)
        if not node or os.environ.get("TESTS_PREBUILD", "1") == "0":
            return
        from mlops_acceptance.fixtures.node.cluster import missing_requirements

        if missing_requirements():
            return  # the node tests skip with that reason; nothing to build for them
        with self._lock:
            if self.proc is not None:
                return
            command = [sys.executable, "-m", "mlops_acceptance.fixtures.node", "prebuild", *([] if kserve else ["--no-kserve"])]
            self.proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, errors="replace",
                                         start_new_session=True)
        progress.say(f"prebuild: building the real node's binaries and images in the background (pid {self.proc.pid})")
        threading.Thread(target=self._relay, args=(self.proc,), daemon=True).start()

    @staticmethod
    def _relay(proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            progress.say(line.rstrip().removeprefix("[acceptance] "))

    def stop(self) -> None:
        """End the build's process group (it removes its temporary folders on the way out)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        progress.say("prebuild: the run is over before the builds; stopping them")
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass
