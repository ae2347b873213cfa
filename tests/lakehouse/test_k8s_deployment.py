"""The Kubernetes description (deploy/k8s): Helm values and the instance they render load, agree, and pass
dagster-k8s's own configuration schema (no cluster here to launch on)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s import K8sRunLauncher

from pipelines.warehouse import BACKEND_ENV, backend

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "k8s"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _snaked(value):
    if isinstance(value, dict):
        return {_snake(k): _snaked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snaked(v) for v in value]
    return value


def test_the_instance_and_the_helm_values_pass_dagster_k8s_schema_and_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    instance, _ = dagster_instance_config(str(DEPLOY))
    launcher = instance["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    processed = process_config(K8sRunLauncher.config_type(), launcher["config"])
    assert processed.success, processed.errors

    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    from_values = _snaked(values["runLauncher"]["config"]["k8sRunLauncher"])
    from_values["env_secrets"] = [s["name"] for s in from_values["env_secrets"]]
    # The chart adds what it owns itself (the instance ConfigMap, service account, home, database secret).
    chart_owned = {k: launcher["config"][k] for k in ("instance_config_map", "service_account_name", "dagster_home",
                                                      "postgres_password_secret")}
    assert process_config(K8sRunLauncher.config_type(), {**chart_owned, **from_values}).success
    assert {k: launcher["config"][k] for k in from_values} == from_values  # what the chart renders is what was checked

    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["--module-name", "definitions"]
    assert (Path(__file__).resolve().parents[2] / "definitions.py").is_file()
    env = {e["name"]: e["value"] for e in deployment["env"]}
    assert env[BACKEND_ENV] == "lakehouse" and f"{BACKEND_ENV}=lakehouse" in launcher["config"]["env_vars"]
    monkeypatch.setenv(BACKEND_ENV, env[BACKEND_ENV])
    assert backend() == "lakehouse"
