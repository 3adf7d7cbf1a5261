"""The core every front door calls: the api Lambda, the state machine's Lambdas, finalize, sync.

Handlers (`serverless_agents.handlers`, entered through `functions/`) parse an event, call one function
here and shape the response; nothing here imports a handler, Powertools' observability or a transport.
"""
