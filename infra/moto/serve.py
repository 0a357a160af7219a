"""Run moto's DynamoDB + Secrets Manager server on loopback.

Prints `port=<n>` once it accepts requests (port 0 picks a free port, which is how tests get a
private server), then serves until stdin closes or the process is signalled. Tests keep stdin as
a pipe, so the server dies with the test process that started it.
"""
import argparse
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import ThreadedMotoServer


def serialise_requests() -> None:
    """Handle one request at a time.

    moto is not safe under concurrent writes: a TransactWriteItems that fails restores a deep copy
    of the whole table taken before it started, erasing what concurrent requests wrote meanwhile,
    and conditional checks are check-then-write. Real DynamoDB makes each item write atomic, so
    serving requests one by one is the faithful choice; callers still race each other.
    """
    lock = threading.Lock()
    handle = DomainDispatcherApplication.__call__

    def locked(self, environ, start_response):
        with lock:
            return handle(self, environ, start_response)

    DomainDispatcherApplication.__call__ = locked


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--until-stdin-closes", action="store_true")
    args = parser.parse_args()
    serialise_requests()

    stop_signals = {signal.SIGINT, signal.SIGTERM}
    # Blocked before the server thread starts, so sigwait below receives them.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    print(f"port={port}", flush=True)

    if args.until_stdin_closes:
        sys.stdin.read()
    else:
        signal.sigwait(stop_signals)
    server.stop()


if __name__ == "__main__":
    main()
