"""LightningModules: one per training objective (bt, r1, joint)."""
