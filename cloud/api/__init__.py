"""The HTTP API for people and the lending core (aiohttp)."""
