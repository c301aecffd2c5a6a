"""Command-line entry points: ``handaug-train`` (:mod:`.train`) and ``handaug`` (:mod:`.main`)."""
