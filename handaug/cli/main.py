"""``handaug``: small utility commands.

    handaug plugins          # every registered generator, discriminator, loss and dataset
    handaug plugins --json   # the same, machine-readable
"""

from __future__ import annotations

import argparse
import json
import sys

from handaug._version import __version__
from handaug.plugin_manager import broken_plugins, plugin_table


def _plugins(args: argparse.Namespace) -> int:
    rows = plugin_table()
    broken = broken_plugins()
    if args.json:
        print(json.dumps({"registered": rows, "broken": [b.__dict__ for b in broken]}, indent=2))
        return 0
    headers = ("kind", "name", "plugin", "distribution", "version")
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in headers]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(row[h]).ljust(w) for h, w in zip(headers, widths)))
    for b in broken:
        print(f"\nFAILED TO LOAD: {b.describe()}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="handaug", description="handaug utilities (training: handaug-train).")
    parser.add_argument("--version", action="version", version=f"handaug {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    plugins = sub.add_parser("plugins", help="list registered networks, losses and datasets with their plugins")
    plugins.add_argument("--json", action="store_true", help="print JSON instead of a table")
    plugins.set_defaults(func=_plugins)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
