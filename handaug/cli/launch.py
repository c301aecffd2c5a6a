"""Console scripts whose command needs an extra: ``handaug-train``, ``handaug-translate``, ``handaug-eval``,
``handaug-train-silnet``.

Each checks that its extra is installed *before* importing its command module (``handaug.cli.train``
imports Lightning at the top), so without it the command prints one line naming the extra,
``handaug-train: error: ... pip install "handaug[train]"``, and exits with status 2, with no
traceback. With the extra installed the command runs exactly as ``python -m handaug.cli.COMMAND``.
"""

from __future__ import annotations

import importlib
import sys

from handaug.optional import MissingExtraError, check_extra


def _launch(prog: str, module: str, extra: str, argv: list[str] | None) -> int:
    try:
        check_extra(extra, needed_by=prog)
    except MissingExtraError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    return int(importlib.import_module(module).main(argv) or 0)


def train(argv: list[str] | None = None) -> int:
    """``handaug-train`` (:mod:`handaug.cli.train`): needs the ``train`` extra."""
    return _launch("handaug-train", "handaug.cli.train", "train", argv)


def translate(argv: list[str] | None = None) -> int:
    """``handaug-translate`` (:mod:`handaug.cli.translate`): needs the ``train`` extra (Lightning runs it)."""
    return _launch("handaug-translate", "handaug.cli.translate", "train", argv)


def evaluate(argv: list[str] | None = None) -> int:
    """``handaug-eval`` (:mod:`handaug.cli.eval`): needs the ``eval`` extra."""
    return _launch("handaug-eval", "handaug.cli.eval", "eval", argv)


def train_silnet(argv: list[str] | None = None) -> int:
    """``handaug-train-silnet`` (:mod:`handaug.cli.silnet`): needs the ``train`` extra (its data module)."""
    return _launch("handaug-train-silnet", "handaug.cli.silnet", "train", argv)
