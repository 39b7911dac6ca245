"""Joint training of resizers and backbones: configuration, callbacks, runs."""
