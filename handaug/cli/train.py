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
and at the end ``export/`` (the generator for ``SynthToReal``). A run holds the folder's lock
(``.handaug-train.lock``) while it trains: a second run in the same folder is refused with one line.
"""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from handaug.arguments import check_choice
from handaug.data.datamodule import UnpairedDataModule
from handaug.training.callbacks import GeneratorExport, SampleGridWriter
from handaug.training.module import HGAN
from handaug.training.resume import ResumeCheckpoint, ResumeError, check_resume_checkpoint, resolve_resume_path
from handaug.training.run_lock import RunFolderBusyError, RunFolderLock
from handaug.training.selection import CheckpointSelection
from handaug.training.validation_measures import StructureMonitor

DEMO_FLAG = "--demo"
DEMO_RECIPE_FLAG = "--demo-recipe"
#: ``handaug-train --demo``'s recipes and their packaged configs.
DEMO_RECIPES: dict[str, str] = {"cpu": "demo.yaml", "gpu": "demo_gpu.yaml"}
GPU_ACCELERATORS: tuple[str, ...] = ("gpu", "cuda")


def demo_config_path(recipe: str = "cpu") -> Path:
    """The packaged config of ``handaug-train --demo``'s ``recipe`` (``"cpu"`` or ``"gpu"``)."""
    recipe = check_choice(recipe, "recipe", tuple(DEMO_RECIPES))
    return Path(str(files("handaug") / "configs" / DEMO_RECIPES[recipe]))


def _option_value(argv: list[str], flag: str) -> str | None:
    """The value of ``flag`` in ``argv`` (``--flag value`` or ``--flag=value``; the last one wins), else None."""
    value = None
    for i, arg in enumerate(argv):
        if arg == flag:
            if i + 1 >= len(argv):
                raise SystemExit(f"handaug-train: error: {flag} needs a value")
            value = argv[i + 1]
        elif arg.startswith(flag + "="):
            value = arg[len(flag) + 1 :]
    return value


def choose_demo_recipe(argv: list[str], cuda_available: bool) -> tuple[str, str]:
    """``(recipe, why)`` for ``handaug-train --demo`` with the other arguments ``argv``.

    ``--demo-recipe cpu|gpu`` decides if given. Otherwise a ``--trainer.accelerator`` of
    ``gpu``/``cuda`` picks the GPU recipe and any other named accelerator the CPU one; with
    none named, the GPU recipe runs when torch sees a CUDA device and the CPU recipe otherwise.
    """
    asked = _option_value(argv, DEMO_RECIPE_FLAG)
    if asked is not None:
        if asked not in DEMO_RECIPES:
            raise SystemExit(f"handaug-train: error: {DEMO_RECIPE_FLAG} must be one of {', '.join(DEMO_RECIPES)}, got {asked!r}")
        return asked, f"asked for with {DEMO_RECIPE_FLAG} {asked}"
    accelerator = _option_value(argv, "--trainer.accelerator")
    if accelerator is not None and accelerator != "auto":
        recipe = "gpu" if accelerator in GPU_ACCELERATORS else "cpu"
        return recipe, f"--trainer.accelerator {accelerator}"
    if cuda_available:
        return "gpu", f"a CUDA device is available ({DEMO_RECIPE_FLAG} cpu runs the CPU recipe there)"
    return "cpu", "no CUDA device"


def _without_option(argv: list[str], flag: str) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(flag + "="):
            out.append(arg)
    return out


def demo_arguments(argv: list[str], cuda_available: bool | None = None) -> tuple[list[str], str]:
    """``argv`` (without ``--demo``) turned into ``handaug-train --demo``'s arguments, and the line that says which recipe runs and why."""
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    recipe, why = choose_demo_recipe(argv, cuda_available)
    if recipe == "gpu" and not cuda_available and _option_value(argv, "--trainer.accelerator") in (None, *GPU_ACCELERATORS):
        raise SystemExit(
            "handaug-train: error: the GPU demo recipe needs a CUDA device, and torch sees none; "
            "add --trainer.accelerator cpu to run it on the CPU anyway (slowly)"
        )
    argv = _without_option(argv, DEMO_RECIPE_FLAG)
    _check_demo_arguments(argv)
    path = demo_config_path(recipe)
    line = f"handaug-train --demo: the {recipe.upper()} recipe ({path.name}), because {why}"
    return ["--config", str(path), *argv], line


def trains_on_cuda(accelerator: Any, strategy: Any) -> bool:
    """Whether a Trainer with these ``accelerator`` and ``strategy`` options trains on a CUDA device.

    ``accelerator`` ``"auto"``, ``"gpu"`` or ``"cuda"`` with a CUDA device present; ``False`` for
    the strategies that fork processes (whose parent must not touch CUDA).
    """
    if not isinstance(accelerator, str) or accelerator not in ("auto", *GPU_ACCELERATORS):
        return False
    if isinstance(strategy, str) and ("fork" in strategy or "notebook" in strategy):
        return False
    return torch.cuda.is_available()


def default_precision(accelerator: Any, strategy: Any) -> str | None:
    """``"bf16-mixed"`` where training will run on a CUDA device with bf16 tensor cores, else ``None`` (Lightning's fp32)."""
    if not trains_on_cuda(accelerator, strategy) or not torch.cuda.is_bf16_supported(including_emulation=False):
        return None
    return "bf16-mixed"


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

    def before_instantiate_classes(self) -> None:
        # On a GPU, unless chosen otherwise: bf16-mixed (where bf16 tensor cores exist), and
        # cuDNN's autotuner (training crops all have one size, so it tunes each convolution once).
        trainer = self.config.get("trainer")
        if trainer is None or not trains_on_cuda(trainer.get("accelerator"), trainer.get("strategy")):
            return
        if trainer.get("benchmark") is None and not trainer.get("deterministic"):
            trainer.benchmark = True
        if trainer.get("precision") is None:
            precision = default_precision(trainer.get("accelerator"), trainer.get("strategy"))
            if precision is not None:
                trainer.precision = precision
                print(f"handaug-train: {precision} precision on the GPU (--trainer.precision 32-true trains in fp32)",
                      flush=True)


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
        argv, recipe_line = demo_arguments(argv)
        print(recipe_line, flush=True)
    elif _option_value(argv, DEMO_RECIPE_FLAG) is not None:
        raise SystemExit(f"handaug-train: error: {DEMO_RECIPE_FLAG} goes with --demo")
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
    lock = None
    try:
        if cli.trainer.is_global_zero:  # the launching process, before any other rank is started
            # Held until the process exits: one run per folder, and --ckpt_path auto decides alone.
            lock = RunFolderLock(cli.trainer.default_root_dir).acquire()
        ckpt_path = resolve_resume_path(
            cli.config.get("ckpt_path"), cli.trainer.default_root_dir, overwrite_run=bool(cli.config.get("overwrite_run"))
        )
        if ckpt_path is not None:  # a damaged or foreign checkpoint is one line now, not a traceback later
            check_resume_checkpoint(ckpt_path, cli.model)
    except (ResumeError, RunFolderBusyError) as err:
        raise SystemExit(f"handaug-train: error: {err}") from None
    try:
        cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt_path, weights_only=True)
    finally:
        if lock is not None:
            lock.release()


if __name__ == "__main__":
    main()
