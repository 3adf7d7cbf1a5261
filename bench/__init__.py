"""Benchmarks, run by hand (`python -m bench`), never by the tests: speed and cost, next to flytekit's own.

    cold_start.py     each Lambda handler as on Lambda (python3.12, the bundle with its bytecode) vs a
                      flytekit-based handler doing the same job: import, first invocation, RSS, modules;
                      bundle sizes
    sync_latency.py   ExecuteTaskSync through the adapter and the local stack vs `pyflyte serve connector`
    async_cost.py     Step Functions transitions, history events and dollars per task, grounded on moto
    scale.py          hundreds of concurrent async tasks through the adapter: none lost, wall time, memory
    _common.py        tables, percentiles, the machine's description, servers in child processes
    flytekit_echo.py  flytekit's side of the sync benchmark: a trivial `SyncConnectorBase`
    flytekit_handler.py  flytekit's side of the cold-start benchmark: a Lambda handler on flytekit
    agents.toml       the deployment the local-stack benchmarks run

Every figure is printed, none asserted: the machine is shared and noisy. docs/benchmarks.md holds the
latest figures and the command that reproduces them.
"""
