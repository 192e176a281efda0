"""The built-in ``trained`` family: encoder folders written by ``berg train`` (a JSON card plus arrays),
found on ``$BERG_ENCODER_PATH`` or shipped in packages. ``cards`` reads and checks cards and registers
them (import-light); ``encoder`` loads one and predicts. Written against the declared API only."""
