# GENERATED from schemas/ by scripts/gen_docs.py: do not edit.
"""Host-side contract: the environment variables a host binding passes to the runtime it spawns (a
trailing * matches a prefix); everything else stays in the host."""

HOST_ENV_ALLOW_LIST = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "PYTHONPATH",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HF_HUB_OFFLINE",
    "VIRTUAL_ENV",
    "RUNTIME_*",
    "OPENBLAS_*",
)
