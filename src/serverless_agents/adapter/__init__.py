"""The adapter: flyteidl's gRPC agent services, for flytepropeller, in front of the project's HTTP API.

Propeller speaks gRPC only (`AsyncAgentService`, `SyncAgentService`, `AgentMetadataService`); the agents
run behind API Gateway. Each servicer method decodes, calls the HTTP API and encodes, like flytekit's own
connector service, so the adapter holds no state: run as many replicas as you like, anywhere propeller
can reach.
"""
