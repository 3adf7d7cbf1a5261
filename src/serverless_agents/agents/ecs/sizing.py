"""Fargate sizes: the smallest CPU and memory pair Fargate accepts that holds a container's resources."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from serverless_agents.exceptions import AgentError

if TYPE_CHECKING:
    from flyteidl.core.tasks_pb2 import Resources


@dataclass(frozen=True)
class FargateSize:
    #: CPU units (1024 = 1 vCPU) and MiB: one of the pairs Fargate accepts.
    cpu: int
    memory: int
    #: GiB, when more than Fargate's default 20 GiB is asked for.
    ephemeral_storage: int | None = None


# (CPU units, the memory sizes in MiB Fargate allows with it), smallest first.
_FARGATE_SIZES: tuple[tuple[int, tuple[int, ...]], ...] = (
    (256, (512, 1024, 2048)),
    (512, tuple(range(1024, 4097, 1024))),
    (1024, tuple(range(2048, 8193, 1024))),
    (2048, tuple(range(4096, 16385, 1024))),
    (4096, tuple(range(8192, 30721, 1024))),
    (8192, tuple(range(16384, 61441, 4096))),
    (16384, tuple(range(32768, 122881, 8192))),
)
_DEFAULT_CPU = "1"
_DEFAULT_MEMORY = "2Gi"
_DEFAULT_STORAGE_GIB = 20
_MAX_STORAGE_GIB = 200
# Kubernetes quantity suffixes, as Flyte's resource strings use them ("500m", "2Gi", "1G").
_SUFFIXES = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
}
_QUANTITY = re.compile(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)")


def fargate_size(resources: Resources) -> FargateSize:
    """The smallest Fargate size that holds the container's resources (limits where set, else requests).

    Without a CPU or memory request the task gets 1 vCPU or 2 GiB. GPUs are refused: Fargate has none.
    """
    from flyteidl.core.tasks_pb2 import Resources as R

    wanted = {entry.name: entry.value for entry in resources.requests if entry.value}
    wanted.update({entry.name: entry.value for entry in resources.limits if entry.value})
    if R.GPU in wanted and _quantity(wanted[R.GPU], "gpu") > 0:
        raise AgentError(
            "resources: Fargate has no GPUs; run GPU tasks elsewhere (e.g. an EC2-backed cluster)"
        )
    cpu_text, memory_text = wanted.get(R.CPU, _DEFAULT_CPU), wanted.get(R.MEMORY, _DEFAULT_MEMORY)
    cpu = math.ceil(_quantity(cpu_text, "cpu") * 1024)
    memory = math.ceil(_quantity(memory_text, "memory") / 2**20)
    storage = None
    if R.EPHEMERAL_STORAGE in wanted:
        gib = math.ceil(_quantity(wanted[R.EPHEMERAL_STORAGE], "ephemeral_storage") / 2**30)
        if gib > _MAX_STORAGE_GIB:
            raise AgentError(
                f"resources: ephemeral_storage {wanted[R.EPHEMERAL_STORAGE]} is over Fargate's 200 GiB"
            )
        storage = gib if gib > _DEFAULT_STORAGE_GIB else None
    for size_cpu, memories in _FARGATE_SIZES:
        if size_cpu >= cpu:
            fitting = next((size for size in memories if size >= memory), None)
            if fitting is not None:
                return FargateSize(size_cpu, fitting, storage)
    raise AgentError(
        f"resources: cpu {cpu_text} and memory {memory_text} exceed Fargate's largest size (16 vCPU, 120 GiB)"
    )


def _quantity(text: str, name: str) -> float:
    match = _QUANTITY.fullmatch(text.strip())
    if match is None or match.group(2) not in _SUFFIXES:
        raise AgentError(f"resources: {name} {text!r} is not a quantity such as 500m, 2, 512Mi or 4Gi")
    return float(match.group(1)) * _SUFFIXES[match.group(2)]
