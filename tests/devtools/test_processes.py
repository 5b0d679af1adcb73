"""devtools.processes.listening_port: the port a server started on port 0 bound, read from the process."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from devtools.processes import listening_port, stop_process_group

SERVE_ON_0 = ("import http.server, sys; server = http.server.HTTPServer(('127.0.0.1', 0), None); "
              "print(server.server_port, flush=True); server.serve_forever()")


def test_listening_port_of_a_server_on_port_0_is_the_port_it_bound() -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVE_ON_0], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        assert listening_port(server, timeout=10) == int(server.stdout.readline())
    finally:
        stop_process_group(server)
        server.stdout.close()


def test_listening_port_of_a_process_that_exits_without_listening_raises_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="exited with code 3"):
        listening_port(subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]), timeout=30)
    assert time.monotonic() - started < 10

