"""Scoring: reward pairs and items with a trained model, summarise, find models."""
