"""Shared network building blocks (MDN head, e2cnn compat shim, ...)."""
