"""soo-marl: deception and Self-Other Overlap fine-tuning in multi-agent RL."""

__version__ = "0.1.0"
