"""Shared metric code: each function states its definition in its docstring."""
