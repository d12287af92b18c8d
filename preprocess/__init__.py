"""Pure, synchronous image work for the preprocess tier: validate, decode, resize, encode."""
