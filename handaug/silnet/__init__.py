"""SilNet's checkpoint format and its pretraining (``handaug-train-silnet``).

- :mod:`handaug.silnet.checkpoint`: save and load a SilNet as a directory of safetensors weights
  and a JSON config (what ``GeometricConsistencyLoss(silnet_checkpoint=DIR)`` loads);
- :mod:`handaug.silnet.pretraining`: the H-GAN reference's SilNet pretraining recipe (its data
  module needs the ``train`` extra, imported only when pretraining runs).

The network itself is :class:`handaug.networks.silnet.SilNet`. Importing this package imports none
of its modules.
"""
