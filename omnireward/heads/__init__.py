"""Heads over backbone hidden states: BT scalar head, generative judge."""
