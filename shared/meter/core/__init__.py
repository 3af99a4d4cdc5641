"""Core: settings, domain errors, observability, identifier text, instants and local calendars.

Imports nothing else of ``meter``; every other package may import it.
"""
