"""``python -m bench``: run the benchmark and print one JSON object (see --help)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

from .options import parse_options
from .runner import run


def main(argv: list[str] | None = None) -> int:
    opts = parse_options(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    result = asyncio.run(run(opts))
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
