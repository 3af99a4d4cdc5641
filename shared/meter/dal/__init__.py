"""Data access: every table's key formats, the repositories, and the DynamoDB and SQS plumbing.

The one package that speaks DynamoDB: key builders and their parsers, item (de)serialization,
transactions that name the actions DynamoDB refuses, records, dimensions, tenants and cursors.
Imports only ``meter.core``.
"""
