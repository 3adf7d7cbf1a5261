"""The embedded local stack: moto running the real ASL, with the real handlers dispatched in-process.

`LocalStack` (stack.py) wires it together; `serverless-agents up` runs it. What moto does not do on its
own, this package adds: invoking Lambda handlers without Docker (lambda_dispatch), Step Functions status
change events (driver), and API Gateway in front of the api and sync functions (apigateway).
"""
