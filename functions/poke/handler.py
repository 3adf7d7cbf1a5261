"""A sensor's poke: by its tasks' schedules, by EventBridge rules, and at registration.

Lambda's entry point `functions.poke.handler.handler`; the code is serverless_agents.handlers.poke.
"""

from serverless_agents.handlers.poke import handler as handler
