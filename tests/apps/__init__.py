"""Small ASGI apps served by real servers in the tests (see tests/servers.py)."""
