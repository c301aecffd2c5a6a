"""handaug's own networks and losses, registered through the same hooks a third-party plugin uses.

========================  ==============  ==================================================
module                    kind            names
========================  ==============  ==================================================
``resnet``                generator       ``resnet`` (CycleGAN ResNet, 4/6/9 residual blocks)
``patchgan``              discriminator   ``patch`` (70×70 PatchGAN), ``pixel`` (1×1 PixelGAN)
``perceptual``            discriminator   ``perceptual`` (multi-scale, on frozen VGG16 features)
``geocongan``             loss            ``geoconsistency`` (GeoConGAN's SilNet silhouette BCE)
``structure``             loss            ``structure`` (local luminance correlation, optional)
``colour_statistics``     loss            ``colour_statistics`` (hand colour moments, optional)
========================  ==============  ==================================================

Every module here holds a ``@hookimpl``. What they build on is core: shared layers, the VGG16
features and SilNet in :mod:`handaug.networks`, SilNet's checkpoint and pretraining in
:mod:`handaug.silnet`. Installed as ``handaug.plugins``; nothing in the core imports these
modules directly (the plugin manager loads them by name).
"""
