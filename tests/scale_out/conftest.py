"""A directory on a small filesystem, for the tests of what a full disk does."""
import shutil
import subprocess
import sys

import pytest

SMALL_FILESYSTEM_BYTES = 1 << 20


@pytest.fixture
def small_filesystem(tmp_path):
    """A directory on a fresh 1 MiB tmpfs, unmounted afterwards; the test is skipped where
    mounting is not permitted (not root, no CAP_SYS_ADMIN, not Linux)."""
    if not sys.platform.startswith("linux") or shutil.which("mount") is None:
        pytest.skip("needs Linux's mount(8) to make a small tmpfs")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_FILESYSTEM_BYTES},mode=0700",
                        "varinit-test", str(mount_point)], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a small tmpfs here: {exc}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True, timeout=30, check=False).returncode:
            # still busy (a child that has not exited yet): detach it now, freed when unused
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30, check=False)
