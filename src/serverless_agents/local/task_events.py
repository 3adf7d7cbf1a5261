"""What `serverless-agents up` tells its user about tasks: one line per event, read from the tasks table.

A task's life is its item in the tasks table (phase, message), so watching the table sees every task the
same way, whichever function moved it: created, each phase change, and its end. Emulator internals never
show here; an agent's error is the one-line message the runtime recorded for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from serverless_agents.local.periodic import Periodic

if TYPE_CHECKING:
    from serverless_agents.agent import Phase
    from serverless_agents.aws.tasks_table import TasksTable

#: Longest message shown: the rest is in the tasks table (`GET /v1/tasks/{id}`).
MESSAGE_LIMIT = 300


def one_line(message: str) -> str:
    line = " ".join(message.split())
    return line if len(line) <= MESSAGE_LIMIT else line[: MESSAGE_LIMIT - 3] + "..."


class TaskEvents:
    """Say one line for each task created, each phase change and each ending, as the table shows them."""

    def __init__(self, table: TasksTable, say: Callable[[str], object], *, interval: float = 0.2) -> None:
        self._table = table
        self._say = say
        self._phases: dict[str, Phase] = {}
        self._loop = Periodic("task-events", interval, self.report)

    def start(self) -> None:
        self.report(quietly=True)  # tasks already in the table are known from here on, not told
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        self.report()  # endings since the last round

    def report(self, *, quietly: bool = False) -> int:
        """Say what changed since the last call; returns how many lines were said."""
        said = 0
        for task in self._table.phases():
            task_id, phase = task.task_id, task.phase
            message = one_line(task.message)
            before = self._phases.get(task_id)
            if before is phase:
                continue
            self._phases[task_id] = phase
            if quietly:
                continue
            if before is None:
                created = f"created (agent {task.agent})"
                event = (
                    f"{created} and ended {phase.name}" if phase.is_terminal else f"{created}, {phase.name}"
                )
            elif phase.is_terminal:
                event = f"ended {phase.name}"
            else:
                event = f"{before.name} -> {phase.name}"
            self._say(f"task {task_id}: {event}: {message}" if message else f"task {task_id}: {event}")
            said += 1
        return said
