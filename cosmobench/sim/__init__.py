"""Shared simulation primitives (light profiles, PSFs, noise, power spectra)."""
