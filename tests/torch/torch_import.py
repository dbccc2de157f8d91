"""Import torch for a test script, or end the script as skipped or failed.

meson runs the scripts with the first python3 on PATH, which may be a
separate installation without torch, while Debian's python3-torch installs
for /usr/bin/python3. So when torch is missing, the script is run again
under an interpreter that has it. When none has it, the script exits 77,
which meson counts as skipped, or 1 (failed) when the environment variable
CI is "true", because CI installs torch.
"""
import os
import subprocess
import sys

EXIT_SKIPPED = 77

# Interpreters to try when the one running the script cannot import torch.
TORCH_INTERPRETERS = ["/usr/bin/python3"]


def exec_interpreter_with_torch():
    """Re-run the main script under an interpreter that imports torch, if any.

    Returns only when none is found (or this interpreter is the only one).
    """
    current = os.path.realpath(sys.executable)
    script = os.path.abspath(sys.argv[0])
    for candidate in TORCH_INTERPRETERS:
        if not os.path.exists(candidate) or os.path.realpath(candidate) == current:
            continue
        probe = subprocess.run([candidate, "-c", "import torch"], capture_output=True)
        if probe.returncode == 0:
            sys.stdout.flush()
            os.execv(candidate, [candidate, script] + sys.argv[1:])


def import_torch(suite):
    """Return the torch module, or exit; `suite` names the test in the message."""
    try:
        import torch
        return torch
    except ImportError:
        exec_interpreter_with_torch()
    interpreters = " nor ".join([sys.executable] + TORCH_INTERPRETERS)
    if os.environ.get("CI") == "true":
        print(f"{suite}: FAILED because neither {interpreters} can import torch, "
              "which CI installs (python3-torch)")
        sys.exit(1)
    print(f"{suite}: SKIPPED because neither {interpreters} can import torch "
          "(on Debian: apt-get install python3-torch)")
    sys.exit(EXIT_SKIPPED)
