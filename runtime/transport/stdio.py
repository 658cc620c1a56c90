"""Claim stdin/stdout for the protocol before anything else can write to fd 1.

Libraries print (mlx-lm's wired_limit warning, transformers notices). After `claim_stdio()` the
protocol owns private duplicates of fd 0 and fd 1; fd 1 and `sys.stdout` point at stderr and fd 0
at /dev/null, so stray output and stray reads by children never touch the wire.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class ProtocolFds:
    input_fd: int
    output_fd: int


def claim_stdio() -> ProtocolFds:
    """Move the protocol onto private fds; call before importing anything that might print."""
    sys.stdout.flush()
    input_fd, output_fd = os.dup(0), os.dup(1)
    os.set_inheritable(input_fd, False)
    os.set_inheritable(output_fd, False)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = sys.stderr
    return ProtocolFds(input_fd, output_fd)
