"""Perturbation probes (`omnireward probe`): does the reward rise when a response gets worse?"""

from omnireward.probe.probes import Probe, ProbeContext, RecordProbe, ResponseProbe

__all__ = ["Probe", "ProbeContext", "RecordProbe", "ResponseProbe"]
