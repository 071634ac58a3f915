"""The machine a benchmark ran on, recorded beside every figure."""

from __future__ import annotations

import platform

import psutil

from recstack.devices import usable_cores


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe_machine() -> dict:
    cores = usable_cores()
    memory_gib = psutil.virtual_memory().total / 2**30
    cpu = _cpu_model()
    return {
        "cpu": cpu,
        "cores": cores,
        "memory_gib": round(memory_gib, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "gpu": None,
        "summary": f"{cores} cores ({cpu}), {memory_gib:.0f} GiB, no GPU",
    }
