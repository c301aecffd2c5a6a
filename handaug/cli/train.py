"""``handaug-train``: train H-GAN with LightningCLI.

    handaug-train --demo                                   # procedural hands, CPU, minutes
    handaug-train --config examples/configs/msh-gan4.yaml --data.synthetic /data/synth --data.real /data/real
    handaug-train --config run.yaml --trainer.strategy ddp --trainer.devices 4 --trainer.num_nodes 2
    handaug-train --config run.yaml --ckpt_path last        # resume where the run stopped
    handaug-train --config run.yaml --ckpt_path auto        # resume if there is a checkpoint, else start
    handaug-train --print_config                           # every option with its default

Options are the arguments of :class:`handaug.training.HGAN` (``--model.*``),
:class:`handaug.training.UnpairedDataModule` (``--data.*``), ``lightning.Trainer``
(``--trainer.*``), :class:`handaug.training.ResumeCheckpoint` (``--checkpointing.*``: how often
``last.ckpt`` is written) and :class:`handaug.training.CheckpointSelection` (``--selection.*``:
keep the best states by a validation measure and export the best).

Under ``--trainer.default_root_dir`` a run writes ``checkpoints/last.ckpt`` (to resume; at every
epoch's end and every 10 minutes), ``samples/*.png`` (synthetic | translated | cycled after
every validation), the logger's metrics (``val/inner_structure`` among them), ``config.yaml``,
and at the end ``export/`` (the generator for ``SynthToReal``).
"""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from handaug.data.datamodule import UnpairedDataModule
from handaug.training.callbacks import GeneratorExport, SampleGridWriter
from handaug.training.module import HGAN
from handaug.training.resume import ResumeCheckpoint, ResumeError, resolve_resume_path
from handaug.training.selection import CheckpointSelection
from handaug.training.validation_measures import StructureMonitor

DEMO_FLAG = "--demo"


def demo_config_path() -> Path:
    """The packaged config of ``handaug-train --demo``."""
    return Path(str(files("handaug") / "configs" / "demo.yaml"))


class HandaugCLI(LightningCLI):
    """LightningCLI with ``--ckpt_path`` / ``--overwrite_run`` and the resume checkpoint's options."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="resume a run: 'last' (<default_root_dir>/checkpoints/last.ckpt, which must exist), 'auto' "
            "(that file if it exists, else a new run) or the path of a Lightning checkpoint",
        )
        parser.add_argument(
            "--overwrite_run",
            type=bool,
            default=False,
            help="start a new run even though <default_root_dir> holds an earlier run's last.ckpt (which the "
            "new run then replaces); without it that is an error",
        )
        parser.add_lightning_class_args(ResumeCheckpoint, "checkpointing")
        parser.add_lightning_class_args(CheckpointSelection, "selection")


def _trainer_defaults() -> dict[str, Any]:
    return {
        "max_epochs": 10,  # the paper's schedule
        "default_root_dir": "runs/hgan",
        # last.ckpt is written by ResumeCheckpoint (--checkpointing.*); best states, when asked for,
        # by CheckpointSelection (--selection.*), a ModelCheckpoint, so Lightning adds no default one.
        # val/inner_structure in the logs at every validation: watch whether the hands keep their
        # fingers and shading (--selection.monitor val/inner_structure --selection.mode max picks on it).
        "callbacks": [SampleGridWriter(), StructureMonitor(), GeneratorExport()],
    }


def _check_demo_arguments(argv: list[str]) -> None:
    for flag in ("--data.synthetic", "--data.real", "--data"):
        if any(arg == flag or arg.startswith(flag + "=") for arg in argv):
            raise SystemExit(
                f"handaug-train: error: --demo trains on the built-in procedural hands and cannot take {flag}; "
                "for your own images start from a model config instead: "
                "handaug-train --config examples/configs/msh-gan4.yaml --data.synthetic ... --data.real ..."
            )


def main(args: list[str] | None = None) -> None:
    """Entry point of ``handaug-train``; ``args`` defaults to ``sys.argv[1:]``."""
    argv = list(sys.argv[1:] if args is None else args)
    if DEMO_FLAG in argv:
        argv.remove(DEMO_FLAG)
        _check_demo_arguments(argv)
        argv = ["--config", str(demo_config_path()), *argv]
    cli = HandaugCLI(
        HGAN,
        UnpairedDataModule,
        args=argv,
        run=False,
        seed_everything_default=0,
        trainer_defaults=_trainer_defaults(),
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"prog": "handaug-train", "description": __doc__.split("\n\n")[0]},
    )
    try:
        ckpt_path = resolve_resume_path(
            cli.config.get("ckpt_path"), cli.trainer.default_root_dir, overwrite_run=bool(cli.config.get("overwrite_run"))
        )
    except ResumeError as err:
        raise SystemExit(f"handaug-train: error: {err}") from None
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path, weights_only=True)


if __name__ == "__main__":
    main()
