"""Powertools' Logger, Metrics and Tracer, shared by the handlers (and only by them)."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="serverless-agents")
metrics = Metrics(namespace="ServerlessAgents", service="serverless-agents")
tracer = Tracer(service="serverless-agents")
