"""Opening what the user names: a checkpoint, optionally into model code, and the trust decisions that gate code."""
