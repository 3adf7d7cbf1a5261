"""The one thing pyproject.toml cannot say: a package found under `src/` plus one mapped from elsewhere.

`serverless_agents.statemachines` is the repository's top-level `statemachines/` (the state machine
definitions' source of truth, outside the package's source folder), mapped with `package_dir`: the wheel
carries it inside the package, and the editable install maps the name to the folder. pyproject's
`packages.find` only finds what is under `src/`, and a `packages` list would name every subpackage a second
time, so discovery and the mapping live here together; everything else is in pyproject.toml.

`functions/` (Lambda's entry points) is deliberately left out: it goes into each function bundle, and a wheel
must not install a package named `functions`.
"""

from setuptools import find_packages, setup

STATEMACHINES = "serverless_agents.statemachines"

setup(
    packages=[*find_packages("src", include=["serverless_agents", "serverless_agents.*"]), STATEMACHINES],
    package_dir={"": "src", STATEMACHINES: "statemachines"},
)
