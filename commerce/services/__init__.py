"""Service layer: every business rule of the commerce backend.

Services are plain functions taking a ``sessionmaker`` first, primitives in, frozen dataclasses
(:mod:`commerce.dto`) out, and raising :mod:`commerce.errors`. Each state change runs in one
``session_factory.begin()`` transaction.
"""
