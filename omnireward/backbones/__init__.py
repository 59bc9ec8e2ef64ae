"""Backbones: the contract (base.py), the modular family (encoders → projectors → causal LM) and
HF-native checkpoints (hf.py), each with its processor."""

from omnireward.backbones.base import Backbone, Batch, Conversation, Processor, Turn, conversation  # noqa: F401
