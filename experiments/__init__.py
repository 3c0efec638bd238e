"""Experiment configs (YAML), shipped as package data of ``cosmobench.experiments``.

``experiments/<task>/<model>.yaml`` is layered over the registry defaults of every run
of that task and model; ``experiments/suites/*.yaml`` are benchmark suites for
``cosmobench bench``.
"""
