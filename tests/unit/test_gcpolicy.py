"""The `run` process's garbage-collector settings (checked in a child process: they change
the whole process, and this one runs the rest of the suite)."""

import subprocess
import sys

from scheduler.gcpolicy import SERVICE_THRESHOLDS


def test_tune_for_service_freezes_startup_objects_and_widens_thresholds() -> None:
    code = ("import gc; from scheduler.gcpolicy import tune_for_service; "
            "before = gc.get_freeze_count(); tune_for_service(); "
            "print(before, gc.get_freeze_count() > 1_000, *gc.get_threshold())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "0"
    assert out[1] == "True"  # the modules and objects made at start-up are out of the collector's sight
    assert tuple(int(x) for x in out[2:]) == SERVICE_THRESHOLDS
