"""Counting: the stream aggregator's exactly-once roll-up, distinct marks, set-aside, reconcile.

Imports ``meter.core``, ``meter.dal``, ``meter.reading`` and ``meter.alerts`` (a commit queues the
alert checks it touches).
"""
