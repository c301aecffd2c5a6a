"""Adapters that put :class:`handaug.SynthToReal` into other libraries' augmentation pipelines.

Each module imports its library, so import only the one you use:

- :mod:`handaug.integrations.albumentations`: ``SynthToReal``, an ``A.ImageOnlyTransform`` for
  numpy ``(H, W, 3)`` images in ``A.Compose``; composites with the hand mask of the target named
  by ``hand_mask_key`` (none by default: no mask is read); parameters declared in an
  ``InitSchema``; serialisable with ``A.to_dict`` / ``A.from_dict`` (the checkpoint as a path).
- :mod:`handaug.integrations.kornia`: ``SynthToReal``, an ``IntensityAugmentationBase2D`` for
  ``(B, 3, H, W)`` batches (GPU) in ``K.AugmentationSequential``, per-image ``p``; hand masks
  through a direct call ``aug(images, mask=masks)``; ``torch.compile(fullgraph=True)`` works.
- :mod:`handaug.integrations.torchvision`: ``SynthToReal``, a ``transforms.v2.Transform`` that
  changes only images; ``use_mask=True`` takes the hand mask from the sample's ``tv_tensors.Mask``.

The batched GPU path and DataLoader workers:

- :mod:`handaug.integrations.batch`: the batched GPU path. Per-sample adapters built with
  ``defer=True`` record their decision in the sample instead of translating in the workers;
  ``translate_batch`` translates the chosen images of the collated batch in one call on the device.
- :mod:`handaug.integrations.lightning`: ``SynthToRealCallback``, the same in a Lightning fit
  (imports Lightning; ``import handaug`` does not).
- :mod:`handaug.integrations.workers`: the error an adapter with ``device="cuda"`` raises in a
  forked process (a forked DataLoader worker), naming the ways that work.

In the three adapters only the images change: keypoints (2D or with 3D columns), boxes, masks and labels
come back as they went in. The host library's own randomness decides whether a call or an image
is translated. Generators are never pickled, so the transforms can be sent to DataLoader workers
or a ``multiprocessing.Pool`` (fork or spawn; see :mod:`handaug.fork_safety`); with
``device="cuda"`` the workers must be started with spawn or forkserver.
"""
