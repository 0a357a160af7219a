"""Run moto's server on loopback, for Secrets Manager (DynamoDB is Amazon's DynamoDB Local).

Prints `port=<n>` once it accepts requests (port 0 picks a free port, which is how tests get a
private server), then serves until stdin closes or the process is signalled. Tests keep stdin as
a pipe, so the server dies with the test process that started it.
"""
import argparse
import signal
import sys

from moto.server import ThreadedMotoServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--until-stdin-closes", action="store_true")
    args = parser.parse_args()

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
