"""Import torch for the scripts that compare tensortape with PyTorch.

import_torch() returns the torch module, re-runs the calling script under
another interpreter that can import it, or exits: with status 77, which
meson counts as skipped, or with status 1 when the environment variable CI
is "true", because CI installs torch.
"""
import os
import subprocess
import sys

EXIT_SKIPPED = 77

# Interpreters to try when the one running the script cannot import torch:
# meson runs it with the first python3 on PATH, which may be a separate
# installation without torch, while Debian's python3-torch installs for
# /usr/bin/python3.
TORCH_INTERPRETERS = ["/usr/bin/python3"]


def exec_interpreter_with_torch(script):
    """Re-run `script` under an interpreter that imports torch, if any.

    Returns only when none is found (or this interpreter is the only one).
    """
    current = os.path.realpath(sys.executable)
    for candidate in TORCH_INTERPRETERS:
        if not os.path.exists(candidate) or os.path.realpath(candidate) == current:
            continue
        probe = subprocess.run([candidate, "-c", "import torch"], capture_output=True)
        if probe.returncode == 0:
            sys.stdout.flush()
            os.execv(candidate, [candidate, os.path.abspath(script)] + sys.argv[1:])


def import_torch(script, suite_name):
    """Return the torch module for `script`, the caller's __file__.

    `suite_name` starts the SKIPPED or FAILED line printed without torch.
    """
    try:
        import torch
        return torch
    except ImportError:
        pass
    exec_interpreter_with_torch(script)
    interpreters = " nor ".join([sys.executable] + TORCH_INTERPRETERS)
    if os.environ.get("CI") == "true":
        print(f"{suite_name}: FAILED because neither {interpreters} can import torch, "
              "which CI installs (python3-torch)")
        sys.exit(1)
    print(f"{suite_name}: SKIPPED because neither {interpreters} can import torch "
          "(on Debian: apt-get install python3-torch)")
    sys.exit(EXIT_SKIPPED)
