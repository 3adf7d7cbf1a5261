"""The HTTP API behind API Gateway: tasks and agents.

Lambda's entry point `functions.api.handler.handler`; the code is serverless_agents.handlers.api.
"""

from serverless_agents.handlers.api import handler as handler
