"""Command line: ``python -m bridge [-c config.yaml] [run | generate-registration | check-config]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from . import __version__
from .config import Config, ConfigError, load_config
from .logs import setup_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bridge",
        description="A self-hosted Matrix bridge for Telegram, Signal, WhatsApp and more.",
    )
    parser.add_argument("--version", action="version", version=f"hub-bridge {__version__}")
    parser.add_argument("-c", "--config", default="config.yaml", help="config file (config.yaml)")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the bridge (the default)")
    reg = sub.add_parser(
        "generate-registration", help="write the appservice registration for the homeserver"
    )
    reg.add_argument("-r", "--registration", help="where to write it (default: from the config)")
    sub.add_parser("check-config", help="check the config and exit")
    return parser


async def _run(config: Config) -> int:
    from .core.bridge import Bridge

    bridge = Bridge(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await bridge.start()
    await stop.wait()
    logging.getLogger("bridge").info("Stopping: finishing the work in progress")
    await bridge.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
        if args.command == "generate-registration":
            from .registration import write_registration

            paths = write_registration(config, Path(args.registration) if args.registration else None)
            names = " and ".join(str(p) for p in paths)
            print(f"Wrote {names}. Add {'them' if len(paths) > 1 else 'it'} to the homeserver's "
                  "app_service_config_files and restart it.")
            return 0
        if args.command == "check-config":
            print(f"{args.config}: OK")
            return 0
        setup_logging(config.logging)
        return asyncio.run(_run(config))
    except ConfigError as e:
        print(f"Configuration error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
