"""Lambda entry points: each parses its event, calls one runtime function and shapes the answer."""
