"""`kzoo tensorboard`: a run's TensorBoard, stopped with the command on any signal."""

import os
import signal
import sys


def check_port_free(host, port):
    """Binds `host:port` once, as the server will, so that a bad `--host` or a port
    in use is one clear error rather than the server's traceback."""
    import socket

    if not 1 <= port <= 65535:
        raise ValueError(f"--port: must be in [1, 65535], got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise ValueError(
            f"--host {host}: not an address of this machine ({error.strerror})"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise ValueError(
                f"--port {port}: cannot listen on {host}:{port} "
                f"({error.strerror}); choose another --port"
            ) from None


# `kzoo tensorboard` passes these on to its server, waits for it and exits with
# 128 + the signal's number: the server never outlives the command.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SERVER_STOP_SECONDS = 10


def run_tensorboard(args):
    import subprocess
    import time

    from kzoo.training.run_directory import RunDirectory

    logdir = RunDirectory(args.run_dir).tensorboard_dir()
    if not os.path.isdir(logdir):
        logdir = args.run_dir
    if not os.path.isdir(logdir):
        raise FileNotFoundError(f"{args.run_dir}: no such run directory")
    check_port_free(args.host, args.port)
    print(f"TensorBoard: http://{args.host}:{args.port}/  (Ctrl-C stops it)", flush=True)
    # The server binds `--host` only: loopback unless the user asks otherwise. In
    # its own process group, so that Ctrl-C reaches it once, through us.
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            logdir,
            "--host",
            args.host,
            "--port",
            str(args.port),
            "--load_fast",
            "false",
        ],
        process_group=0,
    )
    received = []

    def forward(signum, frame):
        received.append(signum)
        if server.poll() is None:
            server.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        deadline = None
        while True:
            try:
                status = server.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if received and deadline is None:
                    deadline = time.monotonic() + SERVER_STOP_SECONDS
                if deadline is not None and time.monotonic() > deadline:
                    server.kill()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if server.poll() is None:
            server.kill()
            server.wait()
    if received:
        name = signal.Signals(received[0]).name
        print(f"kzoo tensorboard: {name} received: TensorBoard stopped", file=sys.stderr)
        return 128 + received[0]
    return 128 - status if status < 0 else status
