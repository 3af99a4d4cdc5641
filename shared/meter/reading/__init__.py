"""Reading: exact range reads, from aggregates for whole buckets and records for ragged edges.

Imports ``meter.core`` and ``meter.dal``.
"""
