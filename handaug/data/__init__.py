"""Data: the procedural hands, image-folder readers, the unpaired data module's building blocks."""
