"""Tests for bench.machine: what every record says about the machine, and how busy others kept it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import machine


def test_machine_text_parsers():
    cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14 96-Core Processor\n"
    assert machine.cpu_model(cpuinfo) == "AMD EPYC 9R14 96-Core Processor"
    assert machine.cpu_model("Processor\t: AArch64\nHardware\t: Qualcomm SM8550\n") == "Qualcomm SM8550"
    assert machine.memory_total_gb("MemTotal:       16384000 kB\nMemFree: 1 kB\n") == pytest.approx(
        16.8, abs=0.05
    )
    assert machine.memory_total_gb("nothing here") is None


def test_machine_facts_name_the_machine_and_software():
    facts = machine.machine_facts(threads=None, quick=True)
    for key in ("cpu", "cores", "ram_gb", "os", "versions", "git_commit", "date", "threads", "quick"):
        assert key in facts, key
    for lib in ("python", "torch", "numpy", "faiss-cpu", "executorch"):
        assert lib in facts["versions"], lib
    assert facts["quick"] is True and facts["cores"] >= 1 and facts["threads"]["torch"] >= 1
    text = machine.describe_machine(facts)
    assert facts["cpu"] in text and "quick run" in text and f"torch {facts['versions']['torch']}" in text
    json.dumps(facts)  # recorded in every JSON


def test_system_busy_seconds_reads_proc_stat():
    stat = "cpu  100 20 30 5000 40 5 6 7 0 0\ncpu0 50 10 15 2500 20 2 3 3 0 0\n"
    busy = (100 + 20 + 30 + 5 + 6 + 7) / os.sysconf("SC_CLK_TCK")  # idle and iowait are not busy
    assert machine.system_busy_seconds(stat) == pytest.approx(busy)
    assert machine.system_busy_seconds("intr 1 2 3\n") is None


def _readings(*values):
    it = iter(values)
    return lambda: next(it)


def test_other_cpu_is_the_machines_busy_time_less_this_processs():
    # busy 100 -> 103 s, own 10 -> 11.5 s, 2 s of wall time on 2 cores: others used 1.5 of 4 core-seconds
    with machine.OtherCpu(_readings(100.0, 103.0), _readings(10.0, 11.5), _readings(0.0, 2.0), cores=2) as other:
        pass
    assert other.as_dict() == {"share": 0.375, "other_cpu_s": 1.5, "wall_s": 2.0, "cores": 2}
    assert "38% of the 2 cores during these 2 s: the machine was shared" in machine.other_cpu_sentence(
        other.as_dict()
    )
    with machine.OtherCpu(_readings(100.0, 101.0), _readings(10.0, 11.0), _readings(0.0, 2.0), cores=2) as own:
        pass  # all the machine's busy time was this process's
    assert own.share == 0.0 and "shared" not in machine.other_cpu_sentence(own.as_dict())
    with machine.OtherCpu(_readings(None, None), _readings(1.0, 2.0), _readings(0.0, 1.0)) as unknown:
        pass  # no /proc/stat: no claim either way
    assert unknown.share is None and machine.other_cpu_sentence(unknown.as_dict()) == ""


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs /proc/stat (Linux)")
def test_other_cpu_sees_a_process_this_one_does_not_wait_for():
    busy = "import time\nend = time.perf_counter() + 0.8\nwhile time.perf_counter() < end: pass\n"
    with machine.OtherCpu() as other:
        child = subprocess.Popen([sys.executable, "-c", busy])
        time.sleep(0.9)
    child.wait()
    # at least most of one busy core (more if the machine is busy with anything else)
    assert other.share is not None and other.share > 0.5 / os.cpu_count(), other.as_dict()
