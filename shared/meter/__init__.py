"""meter: the shared Lambda layer of the usage-metering service.

Handlers in ``functions/`` stay thin; models, auth, data access and use cases live here.
"""
