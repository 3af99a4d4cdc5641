"""Ingestion: validating a batch of usage events and storing each exactly once (HTTP or SQS).

Imports ``meter.core`` and ``meter.dal``.
"""
