"""acom.corpora.synth."""
