"""acom.training.synth."""
