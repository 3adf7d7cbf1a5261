"""The project's HTTP API: its routes as the api Lambda serves them, and the adapter's client of it."""
