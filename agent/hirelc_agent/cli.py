"""``hirelc-agent``: serve this device's timings to hirelc hosts (see ``server``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

import tornado.httpserver
import tornado.netutil

from . import __version__
from .protocol import DEFAULT_PORT, TOKEN_ENV
from .server import Agent, make_app
from .store import ModelStore


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hirelc-agent", description="Time the ONNX models a hirelc host sends, on this device. The token is "
        f"read from ${TOKEN_ENV} or --token-file; every request without it is refused.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: reach it "
                        "through SSH port forwarding; 0.0.0.0 exposes it to the network)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any "
                        "free port, printed)")
    parser.add_argument("--token-file", type=Path, help=f"file holding the token (instead of ${TOKEN_ENV})")
    parser.add_argument("--max-upload-mb", type=float, default=256.0, help="largest model accepted (default 256)")
    parser.add_argument("--max-models", type=int, default=64, help="models held at once; the least recently "
                        "used is dropped beyond it (default 64)")
    parser.add_argument("--version", action="version", version=f"hirelc-agent {__version__}")
    return parser


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise SystemExit(f"error: --token-file {args.token_file}: cannot read it ({exc})") from None
        if not token:
            raise SystemExit(f"error: --token-file {args.token_file}: is empty")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise SystemExit(f"error: no token: set ${TOKEN_ENV} or pass --token-file (the agent never runs without one)")
    return token


def main(argv: list[str] | None = None) -> None:
    """Parse the flags, bind, announce the address on stdout and serve until killed."""
    args = _parser().parse_args(argv)
    if args.max_upload_mb <= 0 or args.max_models < 1:
        raise SystemExit("error: --max-upload-mb must be positive and --max-models at least 1")
    token = _token(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("tornado.access").setLevel(logging.ERROR)  # the agent logs every request itself
    asyncio.run(_serve(args, token))


async def _serve(args: argparse.Namespace, token: str) -> None:
    store = ModelStore(max_models=args.max_models)
    agent = Agent(token, store, int(args.max_upload_mb * 2**20))
    server = tornado.httpserver.HTTPServer(make_app(agent), max_body_size=agent.max_upload_bytes)
    try:
        sockets = tornado.netutil.bind_sockets(args.port, args.host)
    except OSError as exc:
        raise SystemExit(f"error: --host {args.host} --port {args.port}: cannot listen ({exc})") from None
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}, beyond this machine: the token travels in plain HTTP; prefer "
              "the default 127.0.0.1 and SSH port forwarding", file=sys.stderr, flush=True)
    print(f"hirelc-agent {__version__} listening on http://{args.host}:{port} "
          f"({agent.device['cpu_model']}, onnxruntime {agent.device['onnxruntime_version']})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        store.close()
