"""Kefu's action server: one module per business topic, thin over `commerce.services`."""
