"""Flyte's messages and what the project derives from them: literals, the wire format, task identity,
the resource_meta Flyte keeps, and Flyte 2's messages in Flyte 1's terms."""
