"""Cleanup: delete the agent's job once, for the Cleanup state and the finalize Lambda.

Lambda's entry point `functions.delete.handler.handler`; the code is serverless_agents.handlers.delete.
"""

from serverless_agents.handlers.delete import handler as handler
