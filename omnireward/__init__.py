"""omnireward: multimodal reward models — train, score, evaluate, quantize, export, serve."""

__version__ = "0.1.0"
