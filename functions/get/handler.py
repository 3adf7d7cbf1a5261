"""State machine step: ask the agent how its job is doing.

Lambda's entry point `functions.get.handler.handler`; the code is serverless_agents.handlers.get.
"""

from serverless_agents.handlers.get import handler as handler
