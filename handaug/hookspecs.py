"""Hook specifications: how a plugin adds networks, losses and datasets to handaug.

A plugin is a module (or any object) with functions marked ``@hookimpl`` whose names are the
hooks below. handaug's own networks in ``handaug.plugins`` are registered through exactly these
hooks; a third-party package makes its plugin known through the ``handaug`` entry-point group::

    # pyproject.toml of the plugin's distribution
    [project.entry-points.handaug]
    my_nets = "my_package.handaug_plugin"

    # my_package/handaug_plugin.py
    from handaug.hookspecs import hookimpl

    @hookimpl
    def handaug_register_generators(registry):
        registry.add("unet", UNetGenerator)

Each hook receives a :class:`handaug.registry.Registry` and calls ``registry.add(name, factory)``
for every name it provides. ``factory`` is a class or callable taking keyword arguments only;
whatever keyword arguments a user gives on the command line (``--model.generator_kwargs``) or in
a checkpoint's config are passed to it unchanged, so they must be JSON values (numbers, strings,
booleans, lists, dicts, None). A name may be registered once across all plugins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # the container, below the plugin manager; re-exported by handaug.registry
    from handaug._registry import Registry

PROJECT_NAME = "handaug"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def handaug_register_generators(registry: Registry) -> None:
    """Add image-to-image generators.

    The factory returns a ``torch.nn.Module`` whose ``forward(x)`` maps a float tensor of shape
    ``(B, C_in, H, W)`` with values in ``[-1, 1]`` to a tensor of shape ``(B, C_out, H, W)`` in
    ``[-1, 1]`` (end with ``tanh`` or clamp). H-GAN uses ``C_in = C_out = 3`` (RGB).

    The module may set an integer attribute ``stride``: inputs whose height and width are not
    multiples of it are rejected by training and padded by ``SynthToReal``. Without it, any size
    is assumed to work.
    """


@hookspec
def handaug_register_discriminators(registry: Registry) -> None:
    """Add discriminators.

    The factory returns a ``torch.nn.Module`` whose ``forward(x)`` takes a float tensor
    ``(B, 3, H, W)`` in ``[-1, 1]`` and returns either one tensor of real/fake scores
    ``(B, 1, h, w)`` (any h, w: a patch map, or 1×1 for a global decision) or a list of such
    tensors, one per output scale. The LSGAN losses are summed over the list.

    Parameters that must not be trained (a frozen feature extractor) must have
    ``requires_grad = False``: handaug's weight initialisation and optimisers skip them.
    """


@hookspec
def handaug_register_losses(registry: Registry) -> None:
    """Add extra generator losses, chosen by name with ``--model.extra_losses``.

    The factory returns a ``torch.nn.Module``. H-GAN calls it once per translation direction
    with keyword arguments:

    - ``source``: ``(B, 3, H, W)`` float in ``[-1, 1]``, the input images;
    - ``translated``: ``(B, 3, H, W)`` float in ``[-1, 1]``, the generator's output for them
      (gradients flow back to the generator through it);
    - ``source_mask``: ``(B, 1, H, W)`` float in ``{0, 1}``, the hand mask of the source, or
      ``None`` when the source images have no masks;
    - ``direction``: ``"synthetic_to_real"`` or ``"real_to_synthetic"``.

    A loss that compares the translation with the domain it translates into sets the class
    attribute ``uses_target = True``; it then also gets ``target`` (``(B, 3, H, W)`` float in
    ``[-1, 1]``, that domain's images in the same batch) and ``target_mask`` (their hand masks,
    or ``None``), as the built-in ``colour_statistics`` does.

    ``translated`` is the generator's raw output, before any compositing with the mask. The
    module returns a scalar tensor, added to the generator loss times its ``weight`` attribute
    (default 1.0). If the module has trainable parameters of its own (a segmentation network
    trained alongside the GAN), it also defines ``auxiliary_loss(images, masks)`` (images
    ``(N, 3, H, W)`` in ``[-1, 1]`` with known hand masks ``(N, 1, H, W)``) returning a scalar;
    H-GAN trains those parameters with a separate Adam optimiser at the module's
    ``auxiliary_lr`` attribute (default 1e-4). They never receive gradients from the generator loss.
    """


@hookspec
def handaug_register_datasets(registry: Registry) -> None:
    """Add dataset readers, chosen by name in a data source such as ``"synthhands:/data/SH"``.

    The factory is called as ``factory(root=..., **kwargs)`` (``root`` is ``None`` for datasets
    that need no files) and returns a map-style dataset (``__len__`` and ``__getitem__``) whose
    items are dicts with at least ``image``: ``(H, W, 3)`` uint8 RGB. Optional keys:
    ``mask`` ``(H, W)`` uint8 (non-zero on the hand), ``keypoints_2d`` ``(21, 2)`` float32
    pixels, ``keypoints_3d`` ``(21, 3)`` float32 camera frame, ``K`` ``(3, 3)`` float32,
    ``path`` (str). Keypoints follow handaug's joint order: wrist, then thumb, index, middle,
    ring and pinky, each from base to tip.
    """


@hookspec
def handaug_register_feature_extractors(registry: Registry) -> None:
    """Add image feature extractors for FID/KID (``handaug-eval --features NAME``).

    The factory returns a ``torch.nn.Module`` mapping a float tensor ``(B, 3, H, W)`` with values
    in ``[0, 1]`` (RGB, any H and W; resize inside if the network needs a fixed size) to
    features ``(B, d)`` float32. It must set an integer attribute ``num_features`` (= d).
    """
