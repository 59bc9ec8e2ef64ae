"""Backbones: what turns a conversation with media into hidden states (modular or HF-native)."""

from omnireward.backbones.base import Batch, BackboneOutput, Turn, Conversation  # noqa: F401
