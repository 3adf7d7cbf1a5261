"""On a schedule: finalize what a lost status-change event left, end tasks past their bound.

Lambda's entry point `functions.sweeper.handler.handler`; the code is serverless_agents.handlers.sweeper.
"""

from serverless_agents.handlers.sweeper import handler as handler
