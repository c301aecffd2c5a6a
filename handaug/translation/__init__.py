"""Translating a whole dataset on disk (``handaug-translate``), the way GANeratedHands was made.

- :mod:`.plan`: which images to translate and which other files to copy, what is already done;
- :mod:`.writer`: atomic image and file writes in a background thread;
- :mod:`.manifest`: per-rank shard records and the merged ``handaug-translate.json``;
- :mod:`.engine`: Lightning's predict loop over the plan (one GPU, or many through DDP).
"""

from handaug.translation.engine import TranslationReport, translate_dataset

__all__ = ["TranslationReport", "translate_dataset"]
