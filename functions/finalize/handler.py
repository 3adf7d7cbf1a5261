"""EventBridge: a state machine execution ABORTED, TIMED_OUT or FAILED -> the agent's delete.

Lambda's entry point `functions.finalize.handler.handler`; the code is serverless_agents.handlers.finalize.
"""

from serverless_agents.handlers.finalize import handler as handler
