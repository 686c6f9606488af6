"""Print keras-hub's declared requirements, less `tensorflow-text`.

keras-hub declares `tensorflow-text` on Linux, which pulls the full
`tensorflow` build next to `tensorflow-cpu` and is needed only by its text
tokenizers. `make lock` installs keras-hub with `--no-deps`, then what this
prints (run it with the interpreter of the environment holding keras-hub).
"""

import importlib.metadata

from packaging.requirements import Requirement

SKIPPED = {"tensorflow-text"}

for line in importlib.metadata.requires("keras-hub") or []:
    requirement = Requirement(line)
    if requirement.name in SKIPPED:
        continue
    if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
        continue
    print(requirement)
