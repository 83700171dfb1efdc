"""git-model: versions, diffs, gates and rollback for the model weights you own."""

__version__ = "0.1.0"
