"""Alerts: definitions and their periods, exact values, firing once, and delivering each firing.

Imports ``meter.core``, ``meter.dal`` and ``meter.reading``.
"""
