"""The pre-flight check that names the system libraries Qt's xcb plugin lacks (a bare Linux desktop)
instead of letting Qt abort. `ldd` is faked: no broken desktop is needed."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clipvae_studio.gui.platform_check import missing_libraries, platform_problem

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = Path("/fake/plugins/platforms/libqxcb.so")

LDD_BARE_DESKTOP = f"""\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => {PLUGIN.parent}/../../lib/libQt6XcbQpa.so.6 (0x00007f01)
\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007f02)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f03)
\tlibxcb-icccm.so.4 => not found
"""
LDD_COMPLETE = LDD_BARE_DESKTOP.replace("not found", "/lib/x86_64-linux-gnu/libxcb-x.so (0x00007f04)")


def check(env, listing=LDD_BARE_DESKTOP, system="linux"):
    calls = []

    def ldd(path):
        calls.append(path)
        return listing

    return platform_problem(environ=env, system=system, ldd=ldd, plugin=lambda: PLUGIN), calls


def test_missing_xcb_libraries_are_named_with_the_lines_that_install_them():
    message, calls = check({"DISPLAY": ":0"})
    assert calls == [PLUGIN]
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in message
    assert "sudo apt-get install -y libxcb-icccm4 libxcb-keysyms1\n" in message
    assert "sudo dnf install -y xcb-util-keysyms xcb-util-wm\n" in message
    assert "libxcb-cursor" not in message  # present, so not asked for


def test_an_explicit_xcb_platform_is_checked_even_in_a_wayland_session():
    message, _ = check({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "QT_QPA_PLATFORM": "xcb"})
    assert "libxcb-icccm4" in message


def test_a_library_without_a_known_package_is_still_named():
    message, _ = check({"DISPLAY": ":0"}, listing="\tlibfancy-x.so.3 => not found\n")
    assert "libfancy-x.so.3" in message and "apt-file search libfancy-x.so.3" in message
    assert "apt-get install" not in message


@pytest.mark.parametrize("env, system", [
    ({"DISPLAY": ":0"}, "darwin"),                                  # not Linux: no xcb
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux"),   # another platform chosen
    ({"QT_QPA_PLATFORM": "wayland"}, "linux"),
    ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, "linux"),  # Qt may use Wayland
    ({"WAYLAND_DISPLAY": "wayland-0"}, "linux"),
])
def test_cases_where_xcb_is_not_the_platform_are_left_to_qt(env, system):
    assert check(env, system=system) == (None, [])


def test_nothing_is_reported_when_every_library_is_there_or_ldd_is_absent():
    assert check({"DISPLAY": ":0"}, listing=LDD_COMPLETE)[0] is None
    assert check({"DISPLAY": ":0"}, listing=None)[0] is None
    assert missing_libraries(LDD_BARE_DESKTOP) == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]


@pytest.mark.parametrize("env", [{}, {"QT_QPA_PLATFORM": "xcb"}, {"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "w"}])
def test_no_display_at_all_says_so_and_how_to_get_one(env):
    message, calls = check(env)
    assert calls == []
    assert "there is no display (DISPLAY is not set" in message and "xvfb-run python3 main.py" in message


def test_main_py_prints_the_message_and_exits_1_instead_of_qt_aborting(tmp_path):
    """The whole path, `python3 main.py` -> cli -> run_gui, with an `ldd` on PATH that reports the
    libraries of a bare desktop missing (the real plugin is never loaded: the check comes first)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the xcb plugin is Linux only")
    fake = tmp_path / "ldd"
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{LDD_BARE_DESKTOP}EOF\n")
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env.update(DISPLAY=":99", PATH=f"{tmp_path}{os.pathsep}{env.get('PATH', '')}", CLIPVAE_NO_BOOTSTRAP="1",
               CLIPVAE_STUDIO_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, str(ROOT / "main.py")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert "sudo apt-get install -y libxcb-icccm4 libxcb-keysyms1" in proc.stderr
    assert "Could not load the Qt platform plugin" not in proc.stderr
