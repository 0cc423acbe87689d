"""fusion: multimodal video description."""
