"""The liveness view against real sockets: a live server, a closed port, a listener that never answers."""

import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlops_acceptance.fixtures.liveness import Component, compact_tail, look, problem
from mlops_acceptance.fixtures.process import exit_description


@pytest.fixture
def http_server():
    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # the probe hangs up after the first byte of the answer

    server = Server(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_listener():
    """A real listener that accepts every connection and never sends a byte (a hung server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    sock.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_live_server_has_no_problem(http_server):
    assert problem(Component.http("mlflow", f"http://127.0.0.1:{http_server}", "/health")) is None


def test_a_closed_port_refuses():
    port = _closed_port()
    found = problem(Component.http("mlflow", f"http://127.0.0.1:{port}", "/health"))
    assert found == f"mlflow refuses connections on 127.0.0.1:{port}"


def test_a_listener_that_never_answers_is_hung(silent_listener):
    found = problem(Component.postgres("postgresql", "127.0.0.1", silent_listener), timeout=0.5)
    assert found == f"postgresql accepts TCP on 127.0.0.1:{silent_listener} but sent no answer within 0.5 s (hung)"


def test_a_dead_process_is_said_before_its_port(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
    child.wait()
    log = tmp_path / "s3.log"
    log.write_text("booting\nwarning: disk\nwarning: disk\nwarning: disk\nready\n")
    component = Component.http("s3", f"http://127.0.0.1:{_closed_port()}", "/", log=log,
                               exited=lambda: exit_description(child.returncode))
    [finding] = look([component])
    assert finding.problem == "s3 is not running (killed by SIGKILL)"
    # A line repeated by every worker is said once.
    assert finding.describe().endswith("last lines of s3.log:\nbooting\nwarning: disk\nready")


def test_only_the_components_with_a_problem_are_reported(silent_listener, http_server):
    hung = [Component.http(f"c{i}", f"http://127.0.0.1:{silent_listener}", "/") for i in range(3)]
    live = Component.http("live", f"http://127.0.0.1:{http_server}", "/")
    found = look([*hung, live], timeout=1)
    assert [f.component.name for f in found] == ["c0", "c1", "c2"]
    assert all("(hung)" in f.problem for f in found)


def test_compact_tail_of_a_missing_log_is_empty(tmp_path):
    assert compact_tail(tmp_path / "none.log", 5) == ""
