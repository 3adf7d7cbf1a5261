"""A sync agent behind API Gateway: POST /v1/sync/{agent}.

Lambda's entry point `functions.sync.handler.handler`; the code is serverless_agents.handlers.sync.
"""

from serverless_agents.handlers.sync import handler as handler
