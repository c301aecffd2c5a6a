"""Fitting a small network in plain PyTorch, and running it over a tensor in batches.

The loop the evaluation networks share (SilNet, :func:`handaug.networks.silnet.train_silnet`;
the domain classifier, :func:`handaug.metrics.classifier.train_classifier`; the keypoint
regressor, :func:`handaug.metrics.pose_benefit.train_regressor`): :func:`fit` takes one
optimizer step per mini-batch of sample indices, and the indices come from

- :func:`shuffled_batches`: epochs over a fresh random order of the ``n`` samples;
- :func:`random_batches`: ``steps`` batches drawn with replacement.

Both draw from a ``torch.Generator`` the caller seeds, lazily (an epoch's order is drawn when its
first batch is asked for), so a loss that draws augmentations from the same generator gets the
same numbers as a loop that interleaves the two draws by hand. :func:`predict` runs a network over
``N`` inputs in batches without gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn

from handaug.arguments import check_int

__all__ = ["fit", "predict", "random_batches", "shuffled_batches"]


def shuffled_batches(n: int, batch_size: int, epochs: int | Iterable[object], generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Indices ``(b,)`` int64 of consecutive mini-batches of a random order of ``range(n)``, one order per epoch.

    Args:
        n: number of samples.
        batch_size: samples per batch (the last batch of an epoch may be smaller).
        epochs: how many epochs, or an iterable with one item per epoch (e.g. a progress bar over
            ``range(epochs)``).
        generator: the random generator each epoch's ``torch.randperm`` draws from.
    """
    batch_size = check_int(batch_size, "batch_size", 1)
    for _ in range(epochs) if isinstance(epochs, int) else epochs:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


def random_batches(n: int, batch_size: int, steps: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """``steps`` mini-batches of ``min(batch_size, n)`` indices ``(b,)`` int64 drawn uniformly from ``range(n)`` with replacement."""
    batch_size = check_int(batch_size, "batch_size", 1)
    for _ in range(steps):
        yield torch.randint(n, (min(batch_size, n),), generator=generator)


def fit(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    loss: Callable[[torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> list[float]:
    """Train ``model``: for each index batch, ``loss(indices)`` (a scalar tensor), then one optimizer (and scheduler) step.

    ``model`` is in train mode during the loop and left in eval mode. Returns the loss of every
    step, as Python floats.
    """
    model.train()
    history = []
    for indices in batches:
        value = loss(indices)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        history.append(float(value.detach()))
    model.eval()
    return history


@torch.no_grad()
def predict(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    batch_size: int,
    device: str | torch.device = "cpu",
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``model``'s outputs for ``inputs`` (``N`` along the first dimension), in batches, concatenated on the CPU.

    ``model`` is moved to ``device`` and put in eval mode; each batch is passed through
    ``prepare`` (e.g. uint8 → float) before it is moved to ``device``.
    """
    batch_size = check_int(batch_size, "batch_size", 1)
    model.to(device).eval()
    outputs = []
    for start in range(0, inputs.shape[0], batch_size):
        batch = inputs[start : start + batch_size]
        outputs.append(model((batch if prepare is None else prepare(batch)).to(device)).cpu())
    return torch.cat(outputs)
