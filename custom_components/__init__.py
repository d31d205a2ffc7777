"""Kefu's custom Rasa components (one GraphComponent per module)."""
