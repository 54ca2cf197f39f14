"""Before the QApplication is made: can Qt open a window here? On a bare Linux desktop the xcb
platform plugin misses system libraries (libxcb-cursor0, libxcb-icccm4, ...) and Qt aborts with
"Could not load the Qt platform plugin" and nothing a newcomer can act on. This names the missing
libraries and the one apt / dnf line that installs them, or says there is no display at all.

Only the cases where Qt would surely fail are reported: anything else (another platform chosen in
QT_QPA_PLATFORM, a Wayland session, no `ldd`) is left to Qt itself."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping

# The libraries Qt's xcb plugin links to that a minimal desktop can lack: soname -> (Debian/Ubuntu, Fedora) package.
PACKAGES = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-xinerama.so.0": ("libxcb-xinerama0", "libxcb"),
    "libxcb-xinput.so.0": ("libxcb-xinput0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libSM.so.6": ("libsm6", "libSM"),
    "libICE.so.6": ("libice6", "libICE"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
}

NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


def xcb_plugin() -> Path | None:
    """Qt's xcb platform plugin as PySide6 ships it (importing QtCore needs no display)."""
    from PySide6.QtCore import QLibraryInfo

    path = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms" / "libqxcb.so"
    return path if path.is_file() else None


def run_ldd(library: Path) -> str | None:
    """`ldd`'s listing of every library `library` needs, directly or not; None without ldd."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    try:
        return subprocess.run([ldd, str(library)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def missing_libraries(ldd_output: str) -> list[str]:
    return sorted(set(NOT_FOUND.findall(ldd_output)))


def install_lines(missing: list[str]) -> list[str]:
    """The apt and dnf commands that install `missing`; sonames with no known package are named apart."""
    known = [name for name in missing if name in PACKAGES]
    apt = sorted({PACKAGES[name][0] for name in known})
    dnf = sorted({PACKAGES[name][1] for name in known})
    lines = []
    if known:
        lines += [f"  Debian/Ubuntu:  sudo apt-get install -y {' '.join(apt)}",
                  f"  Fedora/RHEL:    sudo dnf install -y {' '.join(dnf)}"]
    unknown = [name for name in missing if name not in PACKAGES]
    if unknown:
        lines.append(f"  ({', '.join(unknown)}: find the package that provides it, "
                     f"e.g. `apt-file search {unknown[0]}`)")
    return lines


def platform_problem(environ: Mapping[str, str] | None = None, system: str | None = None,
                     ldd: Callable[[Path], str | None] = run_ldd,
                     plugin: Callable[[], Path | None] = xcb_plugin) -> str | None:
    """Why Qt could not open a window here (a message for the user), or None when it can or we cannot tell."""
    env = os.environ if environ is None else environ
    if not (system or sys.platform).startswith("linux"):
        return None
    platform = env.get("QT_QPA_PLATFORM", "").strip()
    if platform not in ("", "xcb"):
        return None  # offscreen, wayland, vnc, ...: the user chose, Qt reports on its own
    display, wayland = env.get("DISPLAY"), env.get("WAYLAND_DISPLAY")
    if not display and (platform == "xcb" or not wayland):
        return ("CLIP-VAE Studio cannot open its window: there is no display (DISPLAY is not set"
                + ("" if platform else " and neither is WAYLAND_DISPLAY") + ").\n"
                "Start it from a desktop session, over `ssh -X`, or in a virtual display: xvfb-run python3 main.py\n"
                "The command line needs no display: python3 main.py train --help")
    if not platform and wayland:
        return None  # Qt may well use its Wayland plugin; xcb's libraries would not matter then
    library = plugin()
    listing = ldd(library) if library is not None else None
    missing = missing_libraries(listing or "")
    if not missing:
        return None
    return "\n".join([
        "CLIP-VAE Studio cannot open its window: Qt's xcb platform plugin needs system libraries "
        f"that are not installed: {', '.join(missing)}.",
        "Install them with:", *install_lines(missing), "then run python3 main.py again."])
