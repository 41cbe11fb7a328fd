"""The ``hyres`` command. Each feature module registers its own subcommands through an
``add_commands(subparsers)`` function, so this file only wires them together."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute subcommands, in the order `hyres --help` lists them.
COMMAND_MODULES = ["hyreslib.pipeline.runner", "hyreslib.datasets.download", "hyreslib.pipeline.baselines",
                   "hyreslib.hidenet.cli", "hyreslib.hyres.cli", "hyreslib.pipeline.models",
                   "hyreslib.pipeline.evaluation"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hyres", description="HyRES Kit: hybrid learned image compression")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, RuntimeError, MemoryError) as exc:  # OSError includes ConnectionError
        print(f"hyres {args.command}: error: {exc or type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
