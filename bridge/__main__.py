"""Command line: ``python -m bridge [-c config.yaml] [run | generate-registration |
check-config | upgrade-config]``."""

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
    upgrade = sub.add_parser(
        "upgrade-config",
        help="add the keys this version knows to the config, with their defaults and "
        "comments (keeps yours; writes a backup first)",
    )
    upgrade.add_argument("--dry-run", action="store_true", help="show the changes, write nothing")
    return parser


def _upgrade_config(path: Path, dry_run: bool) -> int:
    from .config_upgrade import diff, upgrade_file

    before = path.read_text(encoding="utf-8") if path.exists() else ""
    result, backup = upgrade_file(path, dry_run=dry_run)
    for key in result.skipped:
        print(f"Not added (its section is written in flow style {{...}}): {key}")
    if not result.changed:
        print(f"{path} already has every key this version knows.")
        return 0
    if dry_run:
        sys.stdout.write(diff(before, result.text, str(path)))
        print(f"Would add {len(result.added)} key(s): {', '.join(result.added)}")
        return 0
    print(f"Added {len(result.added)} key(s) to {path}: {', '.join(result.added)}")
    print(f"The previous version is in {backup}.")
    return 0


def _mention_missing_keys(config: Config) -> None:
    """Tell the admin at start-up when the config lacks keys a newer version added."""
    from .config_upgrade import missing_keys

    log = logging.getLogger("bridge.config")
    if config.path is None:
        return
    try:
        missing = missing_keys(config.path.read_text(encoding="utf-8"))
    except Exception as e:  # never stop the bridge over a hint
        log.debug("Could not compare the config with the example: %s", e)
        return
    if missing:
        log.info(
            "The config lacks %d newer key(s) (%s); their defaults apply. "
            "'python -m bridge -c %s upgrade-config' adds them with their comments.",
            len(missing), ", ".join(missing), config.path,
        )


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
        if args.command == "upgrade-config":  # before loading: an old config may not load
            return _upgrade_config(Path(args.config), args.dry_run)
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
        _mention_missing_keys(config)
        return asyncio.run(_run(config))
    except ConfigError as e:
        print(f"Configuration error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
