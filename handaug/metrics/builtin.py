"""handaug's own FID/KID feature extractors, registered through the ``handaug_register_feature_extractors`` hook.

Registered names (``create_feature_extractor(name, **kwargs)``, ``handaug-eval --features NAME``):

- ``"inception"``: :class:`handaug.metrics.features.InceptionFeatures`, the FID InceptionV3 that
  torchmetrics and torch-fidelity use (pool3, 2048 features). Needs its pretrained weights.
- ``"random_conv"``: :class:`handaug.metrics.features.RandomConvFeatures`, a tiny randomly
  initialised CNN for tests and machines without the Inception weights. Its numbers are not
  FID/KID values and cannot be compared with published ones.

This module is imported whenever plugins load (also during training), so it imports nothing heavy:
:mod:`handaug.metrics.features` loads torchmetrics only when an InceptionV3 is built.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from handaug.hookspecs import hookimpl
from handaug.metrics.features import InceptionFeatures, RandomConvFeatures


def _inception(**kwargs: Any) -> nn.Module:
    return InceptionFeatures(**kwargs)


def _random_conv(**kwargs: Any) -> nn.Module:
    return RandomConvFeatures(**kwargs)


@hookimpl
def handaug_register_feature_extractors(registry) -> None:  # noqa: ANN001 - the hookspec types it
    registry.add("inception", _inception)
    registry.add("random_conv", _random_conv)
