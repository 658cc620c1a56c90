"""Platform probes: system memory from /proc/meminfo and Linux thermal zones, read from files."""

from __future__ import annotations

from pathlib import Path

from runtime.engine import platform


def test_system_memory_reads_total_and_available_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 24576000 kB\nMemFree: 100 kB\nMemAvailable: 20000000 kB\nHugePages_Total: 0\n")
    assert platform.system_memory(str(meminfo)) == {"total": 24576000 * 1024, "available": 20000000 * 1024}


def test_without_meminfo_the_total_comes_from_sysconf_and_available_is_unknown(tmp_path: Path) -> None:
    probed = platform.system_memory(str(tmp_path / "absent"))
    assert probed["available"] is None and probed["total"] > 0


def test_thermal_zones_are_read_in_celsius_and_unreadable_zones_are_skipped(tmp_path: Path) -> None:
    for name, kind, temp in [("thermal_zone0", "x86_pkg_temp", "48000"), ("thermal_zone1", "acpitz", "oops")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "type").write_text(kind + "\n")
        (tmp_path / name / "temp").write_text(temp + "\n")
    (tmp_path / "cooling_device0").mkdir()
    assert platform.thermal(str(tmp_path)) == [{"zone": "thermal_zone0", "type": "x86_pkg_temp", "celsius": 48.0}]


def test_this_machine_reports_its_memory_consistently() -> None:
    memory = platform.memory()
    assert memory["system_total"] and memory["system_total"] > 0
    available = memory["system_available"]
    assert available is None or 0 < available <= memory["system_total"]
