"""`tre hub helm-values`: Zero-to-JupyterHub values with no egress, per-project volumes, culler."""

import yaml

from tre.hub_config.helm import project_volumes


def test_helm_values_render_the_cluster_setup(cli):
    result = cli.ok("hub", "helm-values", "--tre-db-url", "postgresql://tre@db/tre", "--image", "reg.example/tre:1.2")
    values = yaml.safe_load(result.out)
    hub, singleuser = values["hub"], values["singleuser"]
    assert hub["db"]["type"] == "postgres"
    assert {"name": "TRE_DB_URL", "value": "postgresql://tre@db/tre"} in hub["extraEnv"]
    assert hub["config"]["JupyterHub"]["authenticator_class"].endswith("TREAuthenticator")
    assert hub["config"]["JupyterHub"]["admin_access"] is False
    assert "tre_pre_spawn_hook" in hub["extraConfig"]["tre"]
    assert hub["services"]["tre-enforcer"]["command"][:3] == ["tre", "hub", "enforce"]
    policy = singleuser["networkPolicy"]
    assert policy["enabled"] is True and policy["egress"] == []
    assert policy["egressAllowRules"]["nonPrivateIPs"] is False
    assert not any(policy["egressAllowRules"].values())
    assert singleuser["cloudMetadata"]["blockWithIptables"] is True
    assert singleuser["image"] == {"name": "reg.example/tre", "tag": "1.2"}
    assert singleuser["storage"]["type"] == "none"
    assert values["cull"]["enabled"] is True and values["cull"]["timeout"] > 0


def test_helm_values_without_urls_point_at_a_secret(cli):
    values = yaml.safe_load(cli.ok("hub", "helm-values").out)
    env = {e["name"]: e for e in values["hub"]["extraEnv"]}
    assert env["TRE_DB_URL"]["valueFrom"]["secretKeyRef"]["name"] == "tre-secrets"


def test_a_project_pod_mounts_only_its_workspace_with_data_read_only():
    volumes, mounts = project_volumes("alpha")
    assert volumes == [{"name": "project", "persistentVolumeClaim": {"claimName": "tre-project-alpha"}}]
    read_only = {m["subPath"]: m["readOnly"] for m in mounts}
    assert read_only == {"data": True, "work": False, "requests": False, "released": True}
    assert {m["mountPath"] for m in mounts} == {f"/projects/alpha/{s}" for s in read_only}
