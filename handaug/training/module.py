"""``HGAN``: the H-GAN training loop as a LightningModule (two generators, two discriminators)."""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from lightning.pytorch.strategies import DDPStrategy

from handaug.arguments import check_choice, check_flag, check_int, check_optional_flag, check_real
from handaug.initialization import INIT_TYPES, init_weights
from handaug.registry import create_discriminator, create_generator, create_loss
from handaug.training.image_pool import ImagePool
from handaug.training.losses import lsgan_discriminator_loss, lsgan_generator_loss

LR_SCHEDULES: tuple[str, ...] = ("constant", "linear")


def composite(translated: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The translated hand over the source's background: ``translated * mask + source * (1 - mask)``.

    ``translated`` and ``source`` ``(B, 3, H, W)``, ``mask`` ``(B, 1, H, W)`` in ``{0, 1}``.
    With an all-ones mask this returns ``translated``. The result has ``source``'s dtype, so
    under bf16 autocast the background stays bit-exact.
    """
    return torch.lerp(source, translated.to(source.dtype), mask.to(source.dtype))


class HGAN(L.LightningModule):
    """H-GAN (Oprea et al.): CycleGAN with (by default) multi-scale perceptual discriminators.

    Networks (created by registry name, see ``handaug plugins``):

    - ``generator_s2r`` (synthetic → real, the one exported for ``SynthToReal``) and
      ``generator_r2s`` (real → synthetic), both ``generator`` with ``generator_kwargs``;
    - ``discriminator_real`` (real images vs. translated synthetic ones) and
      ``discriminator_synthetic``, both ``discriminator`` with ``discriminator_kwargs``.

    Losses per training step, for batches of synthetic ``s`` and real ``r`` images with hand
    masks ``m_s``, ``m_r`` (all ones without masks):

    - generators: LSGAN adversarial terms summed over output scales, plus
      ``lambda_cycle * (|G_r2s(G_s2r(s)) - s|_1 + |G_s2r(G_r2s(r)) - r|_1)``, plus identity
      ``lambda_cycle * lambda_identity * (|G_s2r(r) - r|_1 + |G_r2s(s) - s|_1)``;
    - discriminators: ``0.5 * ((D(x) - 1)^2 + D(fake)^2)`` summed over scales, with fakes drawn
      from an image pool of ``pool_size``.

    ``lambda_identity`` follows CycleGAN's relative convention: it is a fraction of the cycle
    weight, so the paper's 0.5 with a cycle weight of 10 puts an effective weight of 5 on each
    identity L1 term.

    With ``mask_generated`` (the paper's choice), the translations are composited over their
    input with the input's hand mask, so only the hand is learnt and judged; with
    ``composite_reconstructions`` (handaug's default) the cycle reconstructions and identity
    outputs are composited too, so the cycle and identity terms measure the hand only. The H-GAN
    reference code takes those two terms on the raw outputs (background included).

    Args:
        generator: registry name of both generators (``"resnet"``).
        generator_kwargs: their keyword arguments (``{"n_blocks": 4}`` for msH-GAN4).
        discriminator: registry name of both discriminators (``"perceptual"``, ``"patch"``, ``"pixel"``).
        discriminator_kwargs: their keyword arguments (``{"vgg_weights": "random"}``).
        lambda_cycle: weight of each cycle-consistency L1 term (paper: 10).
        lambda_identity: identity weight relative to ``lambda_cycle`` (paper: 0.5; 0 disables it).
        lr: Adam learning rate of generators and discriminators (paper: 5e-5).
        betas: Adam betas (CycleGAN: 0.5, 0.999).
        lr_schedule: ``"constant"`` (paper) or ``"linear"`` (CycleGAN: constant before
            ``lr_decay_start_epoch``, then linearly down, reaching 0 after the last epoch).
        lr_decay_start_epoch: first epoch of the linear decay (default: half of ``max_epochs``).
        pool_size: images in each discriminator's history pool (CycleGAN: 50; 0 disables).
        init_type: ``"xavier"`` (paper), ``"normal"`` (CycleGAN), ``"kaiming"``, ``"orthogonal"``
            or ``"none"``; frozen parameters (VGG) are never re-initialised.
        init_gain: gain / standard deviation of the initialisation (0.02).
        mask_generated: composite the translations with the hand masks.
        composite_reconstructions: with ``mask_generated``, also composite the reconstructions
            and identity outputs before their L1 terms (``False``: raw, as the reference code).
        extra_losses: registry names of extra generator losses (``["geoconsistency"]`` for
            GeoConGAN; ``handaug plugins`` lists them), applied in both directions.
        extra_loss_kwargs: keyword arguments per extra loss name
            (``{"geoconsistency": {"weight": 1.0}}``).
        compile: train through ``torch.compile``d copies of the generators' forward passes
            (validation and export use the plain networks). ``None`` (default): on when training
            on a CUDA device. If compiling fails, training goes on eager with a warning.
        channels_last: keep the networks' weights (and, with the generators', the batches) in
            channels-last memory layout while training, which cuDNN's tensor-core convolutions
            prefer. ``True``: all four networks. ``None`` (default): on a CUDA device, the
            discriminators, and the generators too when they are compiled (eager instance
            norms copy channels-last tensors back to the usual layout). The weights are back in
            the usual layout when training ends.
        fused_adam: use PyTorch's fused Adam kernels (one kernel for all parameters).
            ``None`` (default): on when training on a CUDA device.

    The three speed options change no result on the CPU, where they are off by default
    (``speed_options()`` says what a run uses). Losses go to the logger as tensors; on a GPU the
    progress bar's ``g`` and ``d`` are copied to the host only every ``log_every_n_steps``
    batches, so that the host does not wait for the GPU in between (on the CPU, every batch).
    """

    def __init__(
        self,
        generator: str = "resnet",
        generator_kwargs: dict[str, Any] | None = None,
        discriminator: str = "perceptual",
        discriminator_kwargs: dict[str, Any] | None = None,
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
        lr: float = 5e-5,
        betas: Sequence[float] = (0.5, 0.999),
        lr_schedule: Literal["constant", "linear"] = "constant",
        lr_decay_start_epoch: int | None = None,
        pool_size: int = 50,
        init_type: Literal["xavier", "normal", "kaiming", "orthogonal", "none"] = "xavier",
        init_gain: float = 0.02,
        mask_generated: bool = True,
        composite_reconstructions: bool = True,
        extra_losses: Sequence[str] | None = None,
        extra_loss_kwargs: dict[str, dict[str, Any]] | None = None,
        compile: bool | None = None,
        channels_last: bool | None = None,
        fused_adam: bool | None = None,
    ) -> None:
        super().__init__()
        # flags and choices come back as plain bool and str, which save_hyperparameters() then records
        compile = check_optional_flag(compile, "compile", "automatic")
        channels_last = check_optional_flag(channels_last, "channels_last", "automatic")
        fused_adam = check_optional_flag(fused_adam, "fused_adam", "automatic")
        lr_schedule = check_choice(lr_schedule, "lr_schedule", LR_SCHEDULES)
        init_type = check_choice(init_type, "init_type", INIT_TYPES)
        # numbers come back as plain int and float too (numpy scalars would reach the checkpoint's hyperparameters)
        lambda_cycle = check_real(lambda_cycle, "lambda_cycle", 0.0, math.inf)
        lambda_identity = check_real(lambda_identity, "lambda_identity", 0.0, math.inf)
        lr = check_real(lr, "lr", 0.0, math.inf)
        init_gain = check_real(init_gain, "init_gain", 0.0, math.inf)
        pool_size = check_int(pool_size, "pool_size", 0)
        if lr_decay_start_epoch is not None:
            lr_decay_start_epoch = check_int(lr_decay_start_epoch, "lr_decay_start_epoch", 0)
        mask_generated = check_flag(mask_generated, "mask_generated")
        composite_reconstructions = check_flag(composite_reconstructions, "composite_reconstructions")
        values = tuple(betas) if not isinstance(betas, (str, bytes)) else ()
        if len(values) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        checked = [check_real(b, f"betas[{i}]", 0.0, 1.0, open_high=True) for i, b in enumerate(values)]
        betas = checked if isinstance(betas, list) else tuple(checked)  # as given: a YAML list stays a list
        self.save_hyperparameters()
        self.automatic_optimization = False

        generator_kwargs = dict(generator_kwargs or {})
        discriminator_kwargs = dict(discriminator_kwargs or {})
        self.generator_s2r = create_generator(generator, **generator_kwargs)
        self.generator_r2s = create_generator(generator, **generator_kwargs)
        self.discriminator_real = create_discriminator(discriminator, **discriminator_kwargs)
        self.discriminator_synthetic = create_discriminator(discriminator, **discriminator_kwargs)
        for net in (self.generator_s2r, self.generator_r2s, self.discriminator_real, self.discriminator_synthetic):
            init_weights(net, init_type, init_gain)

        extra_loss_kwargs = dict(extra_loss_kwargs or {})
        unknown = set(extra_loss_kwargs) - set(extra_losses or ())
        if unknown:
            raise ValueError(f"extra_loss_kwargs names losses not in extra_losses: {sorted(unknown)}")
        self.extra_losses = nn.ModuleDict(
            {name: create_loss(name, **extra_loss_kwargs.get(name, {})) for name in (extra_losses or ())}
        )

        self.pool_real = ImagePool(pool_size)  # translated synthetic images, judged by discriminator_real
        self.pool_synthetic = ImagePool(pool_size)
        # Compiled forwards of the generators while training (a plain dict: not submodules, so
        # state dicts, checkpoints and exports never see them); empty: the networks run eager.
        self._compiled: dict[str, Callable[..., Any]] = {}
        self._compile_pending = False
        self._speed: dict[str, Any] | None = None

    def setup(self, stage: str) -> None:
        # Each step runs two backward passes over disjoint parameter sets (generators, then
        # discriminators), which plain DDP refuses. Make `--trainer.strategy ddp` work as is.
        strategy = self.trainer.strategy
        if isinstance(strategy, DDPStrategy) and "find_unused_parameters" not in strategy._ddp_kwargs:
            strategy._ddp_kwargs["find_unused_parameters"] = True
        if stage == "fit":
            self._speed = self.speed_options(strategy.root_device)
            for net in self._channels_last_networks():
                net.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ speed
    GENERATORS: tuple[str, ...] = ("generator_s2r", "generator_r2s")
    DISCRIMINATORS: tuple[str, ...] = ("discriminator_real", "discriminator_synthetic")

    def speed_options(self, device: torch.device | None = None) -> dict[str, Any]:
        """How training on ``device`` runs: ``{"compile": bool, "channels_last": str, "fused_adam": bool}``.

        ``device`` defaults to the trainer's (or the module's) device. ``channels_last`` is
        ``"none"``, ``"discriminators"`` or ``"all"``. Options left at ``None`` resolve to: on a
        CUDA device, compiled generators, fused Adam and channels-last discriminators (and
        generators, when compiled: eager instance norms work in the usual layout); elsewhere,
        none of them.
        """
        if device is None:
            device = self.trainer.strategy.root_device if self._trainer is not None else self.device
        cuda = torch.device(device).type == "cuda"
        hp = self.hparams
        compiled = cuda if hp.get("compile") is None else bool(hp.get("compile"))
        fused = cuda if hp.get("fused_adam") is None else bool(hp.get("fused_adam"))
        layout = hp.get("channels_last")
        if layout is None:
            channels_last = ("all" if compiled else "discriminators") if cuda else "none"
        else:
            channels_last = "all" if layout else "none"
        return {"compile": compiled, "channels_last": channels_last, "fused_adam": fused}

    def _channels_last_networks(self) -> list[nn.Module]:
        names = {"none": (), "discriminators": self.DISCRIMINATORS, "all": self.GENERATORS + self.DISCRIMINATORS}
        return [getattr(self, name) for name in names[(self._speed or {}).get("channels_last", "none")]]

    def _net(self, name: str) -> Callable[..., Any]:
        """The network ``name`` as training calls it: its compiled forward if there is one."""
        compiled = self._compiled.get(name)
        return compiled if compiled is not None else getattr(self, name)

    def on_train_start(self) -> None:
        # Pools restored from a checkpoint live on the CPU until the model's device is known.
        for pool in (self.pool_real, self.pool_synthetic):
            pool.images = [im.to(self.device) for im in pool.images]
        speed = self._speed or self.speed_options()
        if speed["channels_last"] != "none":
            _match_optimizer_state_layout(self.trainer.optimizers)
        self._compile_pending = bool(speed["compile"])

    def on_train_end(self) -> None:
        self._compiled = {}
        # Exports (safetensors) and other users expect weights in the usual layout.
        for net in self._channels_last_networks():
            net.to(memory_format=torch.contiguous_format)

    def _compile_generators(self, synthetic: torch.Tensor, real: torch.Tensor, mask_s: torch.Tensor, mask_r: torch.Tensor) -> None:
        """Compile both generators and run them once the ways a training step calls them; eager on any failure.

        Only the generators: they hold about three quarters of a step's FLOPs and their instance
        norms, paddings and activations fuse; the discriminators are VGG16 convolutions, which
        compiling would barely speed up for its compile time. Runs inside the first training step
        (under its autocast, with its shapes: no recompiling later), with the random number
        generators restored afterwards; nothing else is touched, and the gradients it leaves are
        cleared by the step's ``zero_grad``.
        """
        compiled = {name: torch.compile(getattr(self, name), dynamic=False) for name in self.GENERATORS}
        opt_g = self.optimizers()[0]
        keep = self.hparams.mask_generated
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                self.toggle_optimizer(opt_g)
                try:
                    # As in generator_losses: from the batch (no gradient), then from translations (with one).
                    raw_real, raw_synthetic = compiled["generator_s2r"](synthetic), compiled["generator_r2s"](real)
                    fake_real = composite(raw_real, synthetic, mask_s) if keep else raw_real
                    fake_synthetic = composite(raw_synthetic, real, mask_r) if keep else raw_synthetic
                    outputs = [compiled["generator_r2s"](fake_real), compiled["generator_s2r"](fake_synthetic)]
                    self.manual_backward(sum(x.float().mean() for x in outputs))
                finally:
                    self.untoggle_optimizer(opt_g)
        except Exception as err:  # noqa: BLE001 - whatever the compiler raises, training can go on eager
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
            warnings.warn(f"HGAN: torch.compile failed ({type(err).__name__}: {first_line}); training continues "
                          "without compiling (--model.compile false skips the attempt)", stacklevel=2)
            self._compiled = {}
            return
        self._compiled = compiled

    @property
    def stride(self) -> int:
        """Input heights and widths must be multiples of this (the generator's stride)."""
        return int(getattr(self.generator_s2r, "stride", 1))

    # ------------------------------------------------------------------ optimisation
    def _trainable(self, *modules: nn.Module) -> list[nn.Parameter]:
        return [p for m in modules for p in m.parameters() if p.requires_grad]

    def configure_optimizers(self) -> Any:
        betas = tuple(float(b) for b in self.hparams.betas)
        fused = {"fused": True} if (self._speed or self.speed_options())["fused_adam"] else {}
        opt_g = torch.optim.Adam(self._trainable(self.generator_s2r, self.generator_r2s), lr=self.hparams.lr, betas=betas, **fused)
        opt_d = torch.optim.Adam(
            self._trainable(self.discriminator_real, self.discriminator_synthetic), lr=self.hparams.lr, betas=betas, **fused
        )
        optimizers = [opt_g, opt_d]
        auxiliary = self._trainable(*self.extra_losses.values())
        if auxiliary:
            groups = [
                {"params": self._trainable(loss), "lr": float(getattr(loss, "auxiliary_lr", 1e-4))}
                for loss in self.extra_losses.values()
                if self._trainable(loss)
            ]
            optimizers.append(torch.optim.Adam(groups, betas=betas))
        if self.hparams.lr_schedule == "constant":
            return optimizers
        max_epochs = max(int(self.trainer.max_epochs or 1), 1) if self._trainer is not None else 1
        start = self.hparams.lr_decay_start_epoch
        start = max_epochs // 2 if start is None else int(start)
        span = max(max_epochs - start, 1)

        def factor(epoch: int) -> float:
            # CycleGAN's rule: epochs before `start` at full rate, then 1 - k / (span + 1) in the
            # k-th decayed epoch, so the last epoch still trains and the rate would hit 0 after it.
            return 1.0 - max(0, epoch + 1 - start) / float(span + 1)

        schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, factor) for opt in (opt_g, opt_d)]
        return optimizers, schedulers

    def on_train_epoch_start(self) -> None:
        # Bring each scheduler to the current epoch: one step per finished epoch. Stepping here
        # rather than at the end of an epoch keeps the rate right whichever point a run was
        # resumed from (a checkpoint written at an epoch's end precedes that epoch's step).
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return
        for scheduler in schedulers if isinstance(schedulers, list) else [schedulers]:
            while scheduler.last_epoch < self.current_epoch:
                scheduler.step()

    # ------------------------------------------------------------------ forward passes
    def forward(self, synthetic: torch.Tensor) -> torch.Tensor:
        """Translate ``(B, 3, H, W)`` synthetic images in ``[-1, 1]`` to the real domain."""
        return self.generator_s2r(synthetic)

    def _translate(self, generator: Callable[..., Any], source: torch.Tensor, mask: torch.Tensor, *, reconstruction: bool = False) -> torch.Tensor:
        out = generator(source)
        hp = self.hparams
        keep = hp.mask_generated and (not reconstruction or hp.get("composite_reconstructions", True))
        return composite(out, source, mask) if keep else out

    def generator_losses(
        self,
        synthetic: torch.Tensor,
        real: torch.Tensor,
        mask_s: torch.Tensor,
        mask_r: torch.Tensor,
        has_mask_s: bool = True,
        has_mask_r: bool = True,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """All generator loss terms, and the two translations (for the discriminators' turn).

        ``has_mask_*`` say whether the masks are real hand masks (False: all-ones placeholders).
        """
        hp = self.hparams
        g_s2r, g_r2s = self._net("generator_s2r"), self._net("generator_r2s")
        raw_real, raw_synthetic = g_s2r(synthetic), g_r2s(real)
        fake_real = composite(raw_real, synthetic, mask_s) if hp.mask_generated else raw_real
        fake_synthetic = composite(raw_synthetic, real, mask_r) if hp.mask_generated else raw_synthetic
        losses = {
            "adv_s2r": lsgan_generator_loss(self._net("discriminator_real")(fake_real)),
            "adv_r2s": lsgan_generator_loss(self._net("discriminator_synthetic")(fake_synthetic)),
        }
        rec_synthetic = self._translate(g_r2s, fake_real, mask_s, reconstruction=True)
        rec_real = self._translate(g_s2r, fake_synthetic, mask_r, reconstruction=True)
        losses["cycle"] = hp.lambda_cycle * (F.l1_loss(rec_synthetic, synthetic) + F.l1_loss(rec_real, real))
        if hp.lambda_identity > 0:
            idt_real = self._translate(g_s2r, real, mask_r, reconstruction=True)
            idt_synthetic = self._translate(g_r2s, synthetic, mask_s, reconstruction=True)
            weight = hp.lambda_cycle * hp.lambda_identity
            losses["identity"] = weight * (F.l1_loss(idt_real, real) + F.l1_loss(idt_synthetic, synthetic))
        for name, loss in self.extra_losses.items():
            weight = float(getattr(loss, "weight", 1.0))
            given_s, given_r = (mask_s if has_mask_s else None), (mask_r if has_mask_r else None)
            # Losses that compare with the other domain (uses_target) also get its batch and masks.
            to_real = {"target": real, "target_mask": given_r} if getattr(loss, "uses_target", False) else {}
            to_synthetic = {"target": synthetic, "target_mask": given_s} if to_real else {}
            terms = [
                loss(source=synthetic, translated=raw_real, source_mask=given_s, direction="synthetic_to_real", **to_real),
                loss(source=real, translated=raw_synthetic, source_mask=given_r, direction="real_to_synthetic", **to_synthetic),
            ]
            losses[name] = weight * (terms[0] + terms[1])
        return losses, fake_real, fake_synthetic

    def auxiliary_losses(self, batch: dict[str, dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Losses of the extra losses' own trainable parts, on the batch images that have masks."""
        images = torch.cat([batch[d]["image"][batch[d]["has_mask"]] for d in ("synthetic", "real")])
        masks = torch.cat([batch[d]["mask"][batch[d]["has_mask"]] for d in ("synthetic", "real")])
        if images.shape[0] == 0:
            return {}
        return {
            f"{name}_auxiliary": loss.auxiliary_loss(images, masks)
            for name, loss in self.extra_losses.items()
            if hasattr(loss, "auxiliary_loss") and any(p.requires_grad for p in loss.parameters())
        }

    def discriminator_losses(
        self, synthetic: torch.Tensor, real: torch.Tensor, fake_real: torch.Tensor, fake_synthetic: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        pooled_real = self.pool_real.query(fake_real.detach())
        pooled_synthetic = self.pool_synthetic.query(fake_synthetic.detach())
        d_real, d_synthetic = self._net("discriminator_real"), self._net("discriminator_synthetic")
        return {
            "d_real": lsgan_discriminator_loss(d_real(real), d_real(pooled_real)),
            "d_synthetic": lsgan_discriminator_loss(d_synthetic(synthetic), d_synthetic(pooled_synthetic)),
        }

    # ------------------------------------------------------------------ Lightning hooks
    def _check_batch(self, images: torch.Tensor, name: str) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"batch['{name}']['image'] must be (B, 3, H, W), got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        if h % self.stride or w % self.stride:
            raise ValueError(
                f"{name} images are {h}×{w}: height and width must be multiples of the generator's stride "
                f"{self.stride}; choose crop_size / val_size accordingly"
            )

    def training_step(self, batch: dict[str, dict[str, torch.Tensor]], batch_idx: int) -> None:
        synthetic, real = batch["synthetic"]["image"], batch["real"]["image"]
        mask_s, mask_r = batch["synthetic"]["mask"], batch["real"]["mask"]
        if batch_idx == 0:
            self._check_batch(synthetic, "synthetic")
            self._check_batch(real, "real")
        if (self._speed or {}).get("channels_last") == "all":
            synthetic, real, mask_s, mask_r = (
                x.contiguous(memory_format=torch.channels_last) for x in (synthetic, real, mask_s, mask_r)
            )
        if self._compile_pending:
            self._compile_pending = False
            self._compile_generators(synthetic, real, mask_s, mask_r)
        opt_g, opt_d, *opt_aux = self.optimizers()
        # Only extra losses need to know whether the masks are real (a host sync on a GPU).
        has_mask_s = has_mask_r = True
        if self.extra_losses:
            has_mask_s, has_mask_r = (_all_masks(batch, domain) for domain in ("synthetic", "real"))

        # Generators: discriminators are frozen (toggle_optimizer), gradients still flow through them.
        self.toggle_optimizer(opt_g)
        g_losses, fake_real, fake_synthetic = self.generator_losses(
            synthetic, real, mask_s, mask_r, has_mask_s, has_mask_r
        )
        g_total = sum(g_losses.values())
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_total)
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        self.toggle_optimizer(opt_d)
        d_losses = self.discriminator_losses(synthetic, real, fake_real, fake_synthetic)
        d_total = d_losses["d_real"] + d_losses["d_synthetic"]
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_total)
        opt_d.step()
        self.untoggle_optimizer(opt_d)

        aux_losses: dict[str, torch.Tensor] = {}
        if opt_aux:
            self.toggle_optimizer(opt_aux[0])
            aux_losses = self.auxiliary_losses(batch)
            if aux_losses:
                opt_aux[0].zero_grad(set_to_none=True)
                self.manual_backward(sum(aux_losses.values()))
                opt_aux[0].step()
            self.untoggle_optimizer(opt_aux[0])

        batch_size = synthetic.shape[0]
        logged = {f"train/{k}": v.detach() for k, v in {**g_losses, **d_losses, **aux_losses}.items()}
        logged["train/g_total"] = g_total.detach()
        # Device tensors: the logger copies them to the host only when it writes (log_every_n_steps).
        self.log_dict(logged, batch_size=batch_size)
        # The progress bar reads its values on the host after every batch: hand it host copies,
        # made (one sync) every log_every_n_steps batches on a GPU; in between it shows the last ones.
        every = progress_bar_interval(self.device, getattr(self._trainer, "log_every_n_steps", 1) if self._trainer else 1)
        if batch_idx % every == 0:
            g, d = torch.stack([g_total.detach().float(), d_total.detach().float()]).cpu()
            self.log_dict({"g": g, "d": d}, prog_bar=True, logger=False, batch_size=batch_size)

    @torch.no_grad()
    def validation_step(self, batch: dict[str, dict[str, torch.Tensor]], batch_idx: int) -> dict[str, torch.Tensor]:
        synthetic, real = batch["synthetic"]["image"], batch["real"]["image"]
        mask_s, mask_r = batch["synthetic"]["mask"], batch["real"]["mask"]
        if batch_idx == 0:
            self._check_batch(synthetic, "synthetic")
        translated = self._translate(self.generator_s2r, synthetic, mask_s)
        cycled = self._translate(self.generator_r2s, translated, mask_s)
        fake_synthetic = self._translate(self.generator_r2s, real, mask_r)
        cycled_real = self._translate(self.generator_s2r, fake_synthetic, mask_r)
        metrics = {
            "val/cycle_l1_synthetic": F.l1_loss(cycled, synthetic),
            "val/cycle_l1_real": F.l1_loss(cycled_real, real),
        }
        self.log_dict(metrics, batch_size=synthetic.shape[0], sync_dist=True)
        return {"synthetic": synthetic, "translated": translated, "cycled": cycled, "real": real}

    # ------------------------------------------------------------------ resumable state
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["handaug"] = {
            "pools": {"real": self.pool_real.state_dict(), "synthetic": self.pool_synthetic.state_dict()},
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": _numpy_state_to_tensors(np.random.get_state()),
                "python": _python_state_to_list(random.getstate()),
            },
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("handaug")
        if not state:
            return
        self.pool_real.load_state_dict(state["pools"]["real"])
        self.pool_synthetic.load_state_dict(state["pools"]["synthetic"])
        rng = state.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            np.random.set_state(_numpy_state_from_tensors(rng["numpy"]))
            random.setstate(_python_state_from_list(rng["python"]))



def progress_bar_interval(device: torch.device, log_every_n_steps: int | None) -> int:
    """Every how many batches the progress bar's losses are copied to the host: 1 on a CPU (no
    cost there), ``log_every_n_steps`` on an accelerator (each copy waits for the device)."""
    if device.type == "cpu":
        return 1
    return max(1, int(log_every_n_steps or 1))


def _all_masks(batch: dict[str, dict[str, torch.Tensor]], domain: str) -> bool:
    """Whether every image of ``batch[domain]`` has a real hand mask (not an all-ones placeholder)."""
    return bool(batch[domain]["has_mask"].all())


def _match_optimizer_state_layout(optimizers: Sequence[torch.optim.Optimizer]) -> None:
    """Give each optimiser state tensor its parameter's memory layout.

    A state restored from a checkpoint written without channels_last has the usual layout, and
    fused or foreach Adam kernels need each parameter's state laid out as the parameter is.
    """
    for optimizer in optimizers:
        for param, state in optimizer.state.items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


# RNG states are stored as tensors and lists so that checkpoints load with weights_only=True.
def _numpy_state_to_tensors(state: tuple) -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _numpy_state_from_tensors(state: dict[str, Any]) -> tuple:
    return (state["name"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"], state["cached"])


def _python_state_to_list(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_state_from_list(state: list) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
