"""Write bench/results/MACHINE.md: the exact command and the machine facts the numbers were measured on."""

import datetime
import os
import platform
import sys
from pathlib import Path

import torch


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


out = Path(sys.argv[1])
command = sys.argv[2] if len(sys.argv) > 2 else "make bench"
out.mkdir(parents=True, exist_ok=True)
(out / "MACHINE.md").write_text(
    f"# How these results were made\n\n- command: `{command}`\n- date (UTC): {datetime.datetime.utcnow():%Y-%m-%d %H:%M}\n"
    f"- CPU: {cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}\n"
    f"- Python {platform.python_version()}, torch {torch.__version__}, no GPU used\n"
)
