"""makemore: character-level models that make more of what you give them."""

__version__ = "0.1.0"
