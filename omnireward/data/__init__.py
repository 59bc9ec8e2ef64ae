"""Data layer: records, format readers, media loaders, demo sets, datamodule."""
