"""``handaug-train``: train H-GAN with LightningCLI.

    handaug-train --demo                                   # procedural hands, CPU, minutes
    handaug-train --config examples/configs/msh-gan4.yaml --data.synthetic /data/synth --data.real /data/real
    handaug-train --config run.yaml --trainer.strategy ddp --trainer.devices 4 --trainer.num_nodes 2
    handaug-train --config run.yaml --ckpt_path last        # resume where the run stopped
    handaug-train --print_config                           # every option with its default

Options are the arguments of :class:`handaug.training.HGAN` (``--model.*``),
:class:`handaug.training.UnpairedDataModule` (``--data.*``) and ``lightning.Trainer``
(``--trainer.*``). Under ``--trainer.default_root_dir`` a run writes ``checkpoints/last.ckpt``
(to resume), ``samples/*.png`` (synthetic | translated | cycled after every validation), the
logger's metrics, ``config.yaml``, and at the end ``export/`` (the generator for ``SynthToReal``).
"""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from handaug.data.datamodule import UnpairedDataModule
from handaug.training.callbacks import GeneratorExport, SampleGridWriter
from handaug.training.module import HGAN

DEMO_FLAG = "--demo"


def demo_config_path() -> Path:
    """The packaged config of ``handaug-train --demo``."""
    return Path(str(files("handaug") / "configs" / "demo.yaml"))


class HandaugCLI(LightningCLI):
    """LightningCLI with a ``--ckpt_path`` to resume from, and run checkpoints kept in one place."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--ckpt_path",
            type=str | None,
            default=None,
            help="Lightning checkpoint to resume from (optimisers, image pools, epoch and step), "
            "or 'last' for <default_root_dir>/checkpoints/last.ckpt when it exists.",
        )

    def before_instantiate_classes(self) -> None:
        pass


def _trainer_defaults() -> dict[str, Any]:
    return {
        "max_epochs": 10,  # the paper's schedule
        "default_root_dir": "runs/hgan",
        "callbacks": [
            # Only last.ckpt, rewritten after every epoch: what a killed run resumes from.
            ModelCheckpoint(save_last=True, save_top_k=0, every_n_epochs=1),
            SampleGridWriter(),
            GeneratorExport(),
        ],
    }


def _pin_checkpoint_dir(trainer: Any) -> None:
    """Keep run checkpoints in ``<default_root_dir>/checkpoints`` (not per logger version), so that
    ``--ckpt_path last`` finds the previous run's ``last.ckpt``."""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.dirpath is None:
            callback.dirpath = str(Path(trainer.default_root_dir) / "checkpoints")


def main(args: list[str] | None = None) -> None:
    """Entry point of ``handaug-train``; ``args`` defaults to ``sys.argv[1:]``."""
    argv = list(sys.argv[1:] if args is None else args)
    if DEMO_FLAG in argv:
        argv.remove(DEMO_FLAG)
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
    _pin_checkpoint_dir(cli.trainer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=cli.config.get("ckpt_path"), weights_only=True)


if __name__ == "__main__":
    main()
