"""Benchmarks (``hepinfer bench ...``): each prints a markdown table and writes CSV + markdown.

So far: ``peer`` — hepinfer's remote scoring against coffea.ml_tools.triton_wrapper.
"""
