"""State machine step: start the agent's job for one task.

Lambda's entry point `functions.create.handler.handler`; the code is serverless_agents.handlers.create.
"""

from serverless_agents.handlers.create import handler as handler
