"""Network building blocks and networks that the core, the metrics and the plugins share.

- :mod:`handaug.networks.layers`: normalisation choices, the U-Net double convolution, conv-bias rule;
- :mod:`handaug.networks.vgg`: frozen VGG16 feature taps (the perceptual discriminator's input);
- :mod:`handaug.networks.silnet`: SilNet, the hand-segmentation U-Net, and its small fit loop.

Registered generators and discriminators live in ``handaug.plugins``; SilNet's checkpoint format
and its pretraining in :mod:`handaug.silnet`. Importing this package imports none of its modules.
"""
