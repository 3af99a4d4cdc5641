"""The HTTP edge: requests and responses, auth, rate limits, the platform shapes, the native query.

May import every other package; none imports it.
"""
