"""Training machinery: jitted steps, staged training, checkpoints, metrics logging."""
