"""The TRE's pre-spawn hook for KubeSpawner (on a cluster; see `helm.py`).

The same authorization as on one machine (`check_server_access`, audited when refused), then
the project's workspace volume and environment. Isolation comes from the pod (its own
filesystem and a NetworkPolicy), so no OS account is needed: `isolation=False`.
"""

from __future__ import annotations

import os

from tornado import web

from tre.errors import PermissionDenied
from tre.hub_config.helm import project_environment, project_volumes
from tre.hub_config.store import hub_store
from tre.workspace import check_server_access, disclosure_threshold


async def tre_pre_spawn_hook(spawner) -> None:
    store = hub_store(os.environ["TRE_DB_URL"])
    user, project = spawner.user.name, spawner.name
    try:
        await store.call(lambda s: check_server_access(s, user, project, store.today(), isolation=False))
    except PermissionDenied as refusal:
        await store.record(
            actor=user, action="hub.spawn_refused", object=f"project:{project}", details={"reason": str(refusal)}
        )
        raise web.HTTPError(403, str(refusal)) from None
    volumes, mounts = project_volumes(project)
    spawner.volumes = volumes
    spawner.volume_mounts = mounts
    threshold = await store.call(lambda s: disclosure_threshold(s, project))
    spawner.environment = {**spawner.environment, **project_environment(project, threshold)}
    await store.record(actor=user, action="hub.spawn", object=f"project:{project}", details={"kubernetes": True})
