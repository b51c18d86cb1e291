"""Backbones: anything that maps input embeddings to logits over V ∪ {MASK}."""
