"""`clipopt experiment`: a whole comparison declared in one plan file.

`read_plan` reads and checks a plan (`plan.py`, with `lines.py` for the line of each key);
`commands.py` turns it into the command lines of the existing commands (sweep, eval, analyze,
study make, report); `record.py` is the folder's own record (`experiment.json`: the plan, the
commands, the versions, the machine, each cell's settings and each step's fingerprint).
The command-line side, which runs those commands in one process, is `cli/experiment.py`.
"""

from clipstyler_opt.experiment.plan import Dimension, Plan, PlanError, read_plan

__all__ = ["Dimension", "Plan", "PlanError", "read_plan"]
