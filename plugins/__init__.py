"""handaug's own networks, registered through the same hooks a third-party plugin uses.

========================  ==============  ==================================================
module                    kind            names
========================  ==============  ==================================================
``resnet``                generator       ``resnet`` (CycleGAN ResNet, 4/6/9 residual blocks)
``patchgan``              discriminator   ``patch`` (70×70 PatchGAN), ``pixel`` (1×1 PixelGAN)
``perceptual``            discriminator   ``perceptual`` (multi-scale, on frozen VGG16 features)
========================  ==============  ==================================================

Installed as ``handaug.plugins``; nothing in the core imports these modules directly.
"""
