"""The contract every engine of the ``image`` family must pass (filled in with the family's recorder)."""

CHECKS = ()
