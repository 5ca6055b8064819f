"""Project volumes: a filesystem per project holds work/ and requests/; filling it fills only it."""

from __future__ import annotations

import os

import pytest

from tre.volumes import ProjectVolumes, is_mounted

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="loop mounts need root")


@pytest.fixture
def volumes(tmp_path):
    found = ProjectVolumes(tmp_path / "volumes", 32 << 20)
    project = tmp_path / "projects" / "alpha"
    yield found, project
    found.release(project, "alpha")
    assert not is_mounted(project / "work") and not is_mounted(found.mount_point("alpha"))


def test_work_and_requests_live_on_the_projects_volume_and_writing_fills_only_it(volumes):
    found, project = volumes
    # A workspace made before volumes existed: its work is moved onto the volume, links as links.
    (project / "work").mkdir(parents=True)
    (project / "work" / "analysis.ipynb").write_text("{}")
    (project / "work" / "outside").symlink_to("/etc/shadow")
    os.mkfifo(project / "work" / "pipe")
    found.ensure(project, "alpha")
    assert is_mounted(project / "work") and is_mounted(project / "requests")
    assert (project / "work" / "analysis.ipynb").read_text() == "{}"
    assert os.readlink(project / "work" / "outside") == "/etc/shadow"  # copied, never followed
    assert not (project / "work" / "pipe").exists()  # special files stay behind
    free_before = os.statvfs(project.parent).f_bavail
    with pytest.raises(OSError) as full, open(project / "work" / "big.bin", "wb") as f:
        for _ in range(64):
            f.write(b"x" * (1 << 20))
            f.flush()
            os.fsync(f.fileno())
    assert full.value.strerror == "No space left on device"
    assert (free_before - os.statvfs(project.parent).f_bavail) * os.statvfs(project.parent).f_frsize < 40 << 20
    used, total = found.usage("alpha")
    assert total <= 32 << 20 and used > 24 << 20
    found.ensure(project, "alpha")  # again: nothing to do
    assert (project / "work" / "analysis.ipynb").exists()
