"""acom.export: ``acom-export`` turns a trained edge head into device artifacts (not built yet)."""
