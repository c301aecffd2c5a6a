"""Translating a whole dataset on disk (``handaug-translate``), the way GANeratedHands was made.

- :mod:`.plan`: which images to translate, which other files to copy, which to skip (symbolic
  links out of the source), what is already done, which target names are someone else's;
- :mod:`.target`: the target folder opened once, reached one folder at a time, never through a link;
- :mod:`.state`: the target's lock, run record (settings) and journal of every file handaug wrote;
- :mod:`.writer`: atomic, journalled image and file writes in a background thread;
- :mod:`.engine`: Lightning's predict loop over the plan (one GPU, or many through DDP), the
  per-rank shard records and the merged ``handaug-translate.json``.
"""

from handaug.translation.engine import TranslationReport, translate_dataset
from handaug.translation.state import TargetFolderError

__all__ = ["TargetFolderError", "TranslationReport", "translate_dataset"]
