"""Datasets, image decoding and the uint8 pre-resizing path of the data loader."""
