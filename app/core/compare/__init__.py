"""Comparing checkpoints (diff) and acting on the comparison: transplant, interpolation, task arithmetic, LoRA merges."""
