"""The shipped manifests render, validate and lint clean; broken ones are caught.

Offline only: rendering, the Kubernetes JSON schemas of kubernetes-validate and
the lint rules. Broken cases are small folders in tests/data/broken_manifests/
or mutations of the shipped, rendered objects, so each proves its rule fires on
a realistic object. tests/data/spec_templates/ holds the spec's own templates
verbatim: the rules must flag their defects.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from mlops_acceptance.fixtures.config import ROOT, load_values
from mlops_acceptance.fixtures.errors import UsageError
from mlops_acceptance.fixtures.kube.findings import describe, errors
from mlops_acceptance.fixtures.kube.lint import RULES, lint
from mlops_acceptance.fixtures.kube.manifests import apply_order, render_manifests
from mlops_acceptance.fixtures.kube.validate import (
    DEFAULT_KUBERNETES_VERSION,
    bundled_versions,
    custom_kinds,
    schema_version,
    validate_objects,
)
from mlops_acceptance.fixtures.render import render

DATA = Path(__file__).resolve().parent / "data"
BROKEN = DATA / "broken_manifests"
SPEC_TEMPLATES = DATA / "spec_templates"

# Value sets the shipped templates must stay valid and lint-clean under.
VARIANTS = {
    "defaults": [],
    "serverless-kpa": ["kserve_enable_raw_deployment=false", "inference_scale_metric=concurrency"],
    "serverless-hpa": ["kserve_enable_raw_deployment=false", "knative_autoscaling_class=hpa"],
    "kourier": ["knative_ingress_class=kourier", "kserve_enable_istio=false"],
    "cpu-only": ["inference_gpu_count=0"],
    "no-ingress": ["minio_ingress_enabled=false", "mlflow_ingress_enabled=false"],
    "builtin-runtime": ["kserve_mlflow_runtime_enabled=false"],
    "mlflow-3": ["mlflow_version=3.6.0"],
    "own-namespaces": ["minio_namespace=storage", "postgresql_namespace=db", "inference_service_namespace=serving"],
}


@pytest.fixture(scope="module")
def values():
    return load_values()


@pytest.fixture(scope="module")
def shipped(values):
    return render_manifests(values)


def one(objects, kind, name=None):
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def rules_of(findings):
    return {f.rule for f in findings}


# --- the shipped manifests ---------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_shipped_manifests_validate_and_lint_clean(variant):
    values = load_values(sets=VARIANTS[variant])
    objects = render_manifests(values)
    problems = validate_objects(objects, values)  # schemas, then lint
    assert not problems, "\n".join(map(str, problems))


def test_every_component_is_rendered(shipped):
    kinds = {(o["kind"], o["metadata"]["name"]) for o in shipped}
    assert {("Deployment", "minio"), ("Service", "minio"), ("PersistentVolumeClaim", "minio-data"),
            ("Ingress", "minio"), ("Secret", "minio-credentials"), ("Job", "minio-create-buckets"),
            ("ConfigMap", "minio-create-buckets"), ("StatefulSet", "postgresql"), ("Service", "postgresql"),
            ("CronJob", "postgresql-backup"), ("Deployment", "mlflow"), ("Service", "mlflow"),
            ("ConfigMap", "mlflow-config"), ("Secret", "mlflow-secret"), ("Ingress", "mlflow"),
            ("ClusterServingRuntime", "mlflow-serving"), ("InferenceService", "oumi-model-example"),
            ("ConfigMap", "config-autoscaler"), ("ServiceAccount", "kserve-s3")} <= kinds
    assert all(o.source.endswith(".yaml.j2") for o in shipped), "each object remembers its template"


def test_minio_objects_follow_the_values(shipped, values):
    dep = one(shipped, "Deployment", "minio")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert dep["spec"]["replicas"] == values.minio_replicas
    assert dep["spec"]["template"]["metadata"]["labels"]["app"] == "minio"
    assert c["image"] == f"minio/minio:{values.minio_version}"
    assert c["livenessProbe"]["httpGet"]["path"] == "/minio/health/live"
    assert c["readinessProbe"]["httpGet"]["path"] == "/minio/health/ready"
    assert {"name": "data", "mountPath": "/data"} in c["volumeMounts"]
    assert {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"]} == {
        "MINIO_ROOT_USER": "minio-credentials", "MINIO_ROOT_PASSWORD": "minio-credentials"}
    pvc = one(shipped, "PersistentVolumeClaim", "minio-data")
    assert pvc["spec"]["resources"]["requests"]["storage"] == values.minio_storage_size
    assert pvc["spec"]["storageClassName"] == values.minio_storage_class
    assert {p["port"] for p in one(shipped, "Service", "minio")["spec"]["ports"]} == {9000, 9001}
    assert one(shipped, "Ingress", "minio")["spec"]["rules"][0]["host"] == values.minio_ingress_host


def test_bucket_job_ships_the_script_and_bucket_list(shipped, values):
    cm = one(shipped, "ConfigMap", "minio-create-buckets")
    assert cm["data"]["create_buckets.py"] == (ROOT / "manifests/minio/create_buckets.py").read_text()
    assert json.loads(cm["data"]["buckets.json"]) == [b.model_dump() for b in values.minio_buckets]


def test_postgresql_objects_follow_the_values(shipped, values):
    sts = one(shipped, "StatefulSet", "postgresql")
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == f"postgres:{values.postgresql_version}"
    assert c["args"] == ["postgres", "-c", f"max_connections={values.postgresql_max_connections}",
                         "-c", f"shared_buffers={values.postgresql_shared_buffers}",
                         "-c", f"effective_cache_size={values.postgresql_effective_cache_size}"]
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == values.postgresql_storage_size
    assert claim["storageClassName"] == values.postgresql_storage_class
    env = {e["name"]: e for e in c["env"]}
    # The image creates only its superuser; the init script creates MLflow's role (no clash).
    assert env["POSTGRES_USER"]["value"] != values.postgresql_user and "POSTGRES_DB" not in env
    init = one(shipped, "Secret", "postgresql-init")
    assert init["stringData"]["init-mlflow-db.sql"] == render("postgresql/init-mlflow-db.sql.j2", values)
    backup = one(shipped, "CronJob", "postgresql-backup")
    assert "pg_dump" in backup["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"][0]["command"]
    assert (ROOT / "manifests/postgresql/RESTORE.md").is_file()


def test_the_backup_checks_read_the_shipped_cronjobs_dump_flags_and_bucket(shipped):
    from mlops_acceptance.fixtures.capabilities.postgres import backup_cronjobs, dump_flags
    from mlops_acceptance.suites.backup_helpers import named_buckets

    [(cronjob, command)] = backup_cronjobs(shipped)
    # Connection, output and database are the stack's; format and the rest are the configured backup's.
    assert dump_flags(command) == ["--format=custom"]
    assert dump_flags(["pg_dump", "-h", "db", "-p", "5432", "-U", "u", "-F", "c", "-n", "public", "-v",
                       "--exclude-table-data=runs", "-fout.dump", "--file=/b/x.dump", "-d", "mlflow", "mlflow"]) == [
        "-F", "c", "-n", "public", "-v", "--exclude-table-data=runs"]
    # Where its Job uploads: the k8s half watches this bucket for the new dump.
    assert named_buckets(cronjob) == ["backups"]


def test_mlflow_deployment_starts_and_reads_its_secret(shipped, values):
    dep = one(shipped, "Deployment", "mlflow")
    pod = dep["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert dep["spec"]["replicas"] == values.mlflow_replicas
    assert server["livenessProbe"]["httpGet"]["path"] == server["readinessProbe"]["httpGet"]["path"] == "/health"
    assert str(values.mlflow_workers) in server["command"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in server["env"]
            if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs == {"MLFLOW_BACKEND_STORE_URI": "backend-store-uri", "AWS_ACCESS_KEY_ID": "aws-access-key-id",
                    "AWS_SECRET_ACCESS_KEY": "aws-secret-access-key"}
    assert "psycopg2-binary>=2.9,<3" in " ".join(pod["initContainers"][0]["command"])
    assert values.mlflow_backend_store_uri not in json.dumps(server["command"]), "no password on the command line"
    assert one(shipped, "Service", "mlflow")["spec"]["ports"][0]["port"] == values.mlflow_port


def test_inference_service_fixes_the_spec(shipped, values):
    isvc = one(shipped, "InferenceService")
    predictor = isvc["spec"]["predictor"]
    gpu = values.kserve_gpu_resource_limit
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert (predictor["scaleTarget"], predictor["scaleMetric"]) == (values.inference_scale_target,
                                                                   values.inference_scale_metric)
    assert predictor["model"]["resources"]["limits"][gpu] == predictor["model"]["resources"]["requests"][gpu] \
        == str(values.inference_gpu_count)
    assert predictor["nodeSelector"] == values.kserve_gpu_node_selector
    assert predictor["serviceAccountName"] == "kserve-s3"
    runtime = one(shipped, "ClusterServingRuntime", "mlflow-serving")
    assert "namespace" not in runtime["metadata"]
    assert {"name": "mlflow", "version": "2", "autoSelect": True} in runtime["spec"]["supportedModelFormats"]
    s3 = one(shipped, "Secret", "kserve-s3-credentials")
    assert s3["metadata"]["namespace"] == isvc["metadata"]["namespace"]
    assert s3["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"].startswith("minio.")


def test_cpu_only_model_is_not_pinned_to_gpu_nodes():
    values = load_values(sets=["inference_gpu_count=0"])
    predictor = one(render_manifests(values), "InferenceService")["spec"]["predictor"]
    assert "nodeSelector" not in predictor and "tolerations" not in predictor
    assert values.kserve_gpu_resource_limit not in predictor["model"]["resources"]["limits"]


def test_ingress_disabled_renders_none():
    objects = render_manifests(load_values(sets=VARIANTS["no-ingress"]))
    assert not [o for o in objects if o["kind"] == "Ingress"]


def test_apply_order(shipped):
    ordered = [o["kind"] for o in apply_order(shipped)]
    assert ordered[0] == "Namespace" and ordered[-1] == "InferenceService"
    def first(kind): return ordered.index(kind)
    def last(kind): return len(ordered) - 1 - ordered[::-1].index(kind)
    assert last("ServiceAccount") < first("Secret")
    assert last("Secret") < first("PersistentVolumeClaim") < first("Service") < first("Deployment")
    assert last("StatefulSet") < first("Job") and last("CronJob") < first("Ingress")
    assert last("Ingress") < first("ClusterServingRuntime") < first("InferenceService")
    assert len(ordered) == len(shipped)


# --- rendering errors ------------------------------------------------------------------

def test_undefined_variable_names_template_line_and_variable(values):
    with pytest.raises(UsageError) as caught:
        render_manifests(values, BROKEN / "undefined_variable")
    assert caught.value.lines == ["svc.yaml.j2:8: 'minio_api_port' is undefined"]


def test_invalid_yaml_names_the_template(values):
    with pytest.raises(UsageError) as caught:
        render_manifests(values, BROKEN / "invalid_yaml")
    (line,) = caught.value.lines
    assert line.startswith("cm.yaml.j2:") and "not valid YAML" in line


def test_a_users_folder_is_rendered_recursively(tmp_path, values):
    (tmp_path / "roles/minio/templates").mkdir(parents=True)
    (tmp_path / "roles/minio/templates/svc.yaml.j2").write_text(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: minio\n  namespace: {{ minio_namespace }}\n"
        "spec:\n  ports: [{port: 9000}]\n---\n")
    (tmp_path / "notes.txt").write_text("not a template")
    (obj,) = render_manifests(values, tmp_path)
    assert obj.source == "roles/minio/templates/svc.yaml.j2" and obj["metadata"]["namespace"] == "mlops"


def test_errors_inside_includes_and_filters_are_one_line(tmp_path, values):
    (tmp_path / "part.j2").write_text("x: {{ nope }}\n")
    (tmp_path / "a.yaml.j2").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  {% include 'part.j2' %}\n")
    (tmp_path / "b.yaml.j2").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n"
                                        "data:\n  n: \"{{ minio_replicas + 'x' }}\"\n")
    with pytest.raises(UsageError) as caught:
        render_manifests(values, tmp_path)
    assert caught.value.lines == [
        "part.j2:1: 'nope' is undefined (included from a.yaml.j2)",
        "b.yaml.j2:6: TypeError: unsupported operand type(s) for +: 'int' and 'str'",
    ]


# --- schema validation ---------------------------------------------------------------

def test_schema_versions():
    assert DEFAULT_KUBERNETES_VERSION in bundled_versions()
    assert schema_version("v1.31.4") == "1.31"
    for outside in ("1.10", "9.99"):
        with pytest.raises(UsageError):
            schema_version(outside)
    assert ("serving.kserve.io/v1beta1", "InferenceService") in custom_kinds()


def test_invalid_objects_are_rejected(shipped):
    dep = copy.deepcopy(one(shipped, "Deployment", "minio"))
    dep["spec"]["replicas"] = "two"
    dep["spec"]["replica"] = 2  # unknown field: strict schemas reject it
    messages = [f.message for f in validate_objects([dep])]
    assert any(m.startswith("spec.replicas: 'two' is not of type 'integer'") for m in messages)
    assert any("'replica' was unexpected" in m for m in messages)

    isvc = copy.deepcopy(one(shipped, "InferenceService"))
    isvc["spec"]["predictor"]["scaleMetric"] = "gpu"
    isvc["spec"]["predictor"]["tolerations"][0]["efect"] = "NoSchedule"
    isvc["metadata"]["name"] = "1-model"
    found = {f.message.split(":")[0] for f in validate_objects([isvc])}
    assert {"spec.predictor.scaleMetric", "spec.predictor.tolerations.0", "metadata.name"} <= found

    removed = {"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "old"}}
    assert [f.rule for f in validate_objects([removed])] == ["schema"]


def test_unknown_custom_kind_does_not_pass_silently(values):
    objects = render_manifests(values, BROKEN / "unknown_crd")
    (finding,) = validate_objects(objects)
    assert (finding.rule, finding.severity) == ("unverified", "error")
    (allowed,) = validate_objects(objects, allow_unverified=True)
    assert allowed.severity == "warning" and not errors([allowed])


# --- lint rules catch broken manifests ------------------------------------------------

def mutated(shipped, kind, name=None):
    """A copy of the shipped objects and the one to break in it."""
    objects = copy.deepcopy(shipped)
    return objects, one(objects, kind, name)


def test_runtime_in_the_wrong_namespace(values):
    objects = render_manifests(values, BROKEN / "runtime_wrong_namespace")
    findings = lint(objects, values, ["runtime-visibility"])
    assert rules_of(findings) == {"runtime-visibility"}
    assert "'kserve-system'" in findings[0].message


def test_namespaced_runtime_moved_away_from_the_isvc(shipped, values):
    objects, runtime = mutated(shipped, "ClusterServingRuntime")
    runtime["kind"] = "ServingRuntime"
    runtime["metadata"]["namespace"] = values.kserve_namespace
    assert rules_of(lint(objects, values)) == {"runtime-visibility"}
    runtime["metadata"]["namespace"] = values.inference_service_namespace  # the other fix
    assert not lint(objects, values)


def test_gpu_predictor_without_tolerations(shipped, values):
    objects, isvc = mutated(shipped, "InferenceService")
    del isvc["spec"]["predictor"]["tolerations"]
    findings = lint(objects, values)
    assert rules_of(findings) == {"gpu-scheduling"} and "toleration nvidia.com/gpu" in findings[0].message
    del isvc["spec"]["predictor"]["nodeSelector"]
    assert "nodeSelector workload-type=inference" in lint(objects, values)[0].message


def test_gpu_limit_differs_from_request(shipped, values):
    objects, isvc = mutated(shipped, "InferenceService")
    isvc["spec"]["predictor"]["model"]["resources"]["requests"][values.kserve_gpu_resource_limit] = "2"
    assert rules_of(lint(objects, values)) == {"gpu-resources"}


def test_selector_does_not_match_labels(shipped, values):
    objects, dep = mutated(shipped, "Deployment", "mlflow")
    dep["spec"]["selector"]["matchLabels"] = {"app": "mlflow-server"}
    assert rules_of(lint(objects, values)) == {"selector-labels"}
    dep["spec"]["template"]["metadata"]["labels"] = {"app": "mlflow-server"}  # now the Service selects nothing
    assert rules_of(lint(objects, values)) == {"service-selector"}


def test_credential_in_a_configmap(shipped, values):
    objects, cm = mutated(shipped, "ConfigMap", "mlflow-config")
    cm["data"]["aws-secret-access-key"] = values.mlflow_aws_secret_access_key
    cm["data"]["tracking-db"] = "postgresql://mlflow:other-password@postgresql:5432/mlflow"
    findings = lint(objects, values)
    assert rules_of(findings) == {"configmap-credential"}
    assert {f.message.split("'")[1] for f in findings} == {"aws-secret-access-key", "tracking-db"}


def test_literal_password_env(shipped, values):
    objects, sts = mutated(shipped, "StatefulSet", "postgresql")
    env = sts["spec"]["template"]["spec"]["containers"][0]["env"]
    env[1] = {"name": "POSTGRES_PASSWORD", "value": "hunter2-literal"}
    findings = lint(objects, values)
    assert rules_of(findings) == {"literal-credential"} and "POSTGRES_PASSWORD" in findings[0].message


def test_configured_secret_on_a_command_line(shipped, values):
    objects, cron = mutated(shipped, "CronJob", "postgresql-backup")
    upload = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    upload["command"][-1] = upload["command"][-1].replace('os.environ["S3_SECRET_KEY"]', repr(values.minio_secret_key))
    assert rules_of(lint(objects, values)) == {"literal-credential"}


def test_s3_storage_without_credentials(shipped, values):
    objects, isvc = mutated(shipped, "InferenceService")
    del isvc["spec"]["predictor"]["serviceAccountName"]
    assert rules_of(lint(objects, values)) == {"s3-credentials"}

    objects, secret = mutated(shipped, "Secret", "kserve-s3-credentials")
    del secret["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"]
    findings = lint(objects, values)
    assert rules_of(findings) == {"s3-credentials"} and "s3-endpoint" in findings[0].message


def test_missing_secret_and_duplicate(shipped, values):
    objects = [o for o in copy.deepcopy(shipped) if o["metadata"]["name"] != "mlflow-secret"]
    findings = lint(objects, values)
    assert rules_of(findings) == {"missing-reference"} and len(findings) == 1
    objects = copy.deepcopy(shipped) + [copy.deepcopy(one(shipped, "Service", "mlflow"))]
    assert rules_of(lint(objects, values)) == {"duplicate-object"}


def test_findings_name_rule_object_and_template(shipped, values):
    objects, dep = mutated(shipped, "Deployment", "minio")
    dep["spec"]["selector"]["matchLabels"] = {"app": "other"}
    (finding,) = lint(objects, values)
    assert str(finding).startswith("error: Deployment mlops/minio (minio/minio-deployment.yaml.j2): "
                                   "[selector-labels] ")
    assert "\n" not in str(finding)
    with pytest.raises(ValueError):
        lint(objects, values, ["no-such-rule"])


# --- the spec's own templates -------------------------------------------------------

def test_validate_objects_runs_lint_given_values(shipped, values):
    objects, dep = mutated(shipped, "Deployment", "minio")
    dep["spec"]["replicas"] = "one"
    dep["spec"]["selector"]["matchLabels"] = {"app": "other"}
    assert rules_of(validate_objects(objects)) == {"schema"}
    assert rules_of(validate_objects(objects, values)) == {"schema", "selector-labels"}
    assert yaml.safe_load(yaml.safe_dump(dep)) == dict(dep), "a Manifest dumps as a plain mapping"


def test_spec_templates_are_flagged(values):
    objects = render_manifests(values, SPEC_TEMPLATES)
    # They are well-formed: their defects are the ones only the lint rules see.
    assert not validate_objects(objects)
    by_rule = {}
    for f in lint(objects, values):
        by_rule.setdefault(f.rule, []).append(describe(f.obj))
    assert set(by_rule) == {"runtime-visibility", "s3-credentials", "mlflow-drivers", "autoscaling",
                            "missing-reference"}, by_rule
    assert by_rule["runtime-visibility"] == ["InferenceService default/oumi-model-example "
                                             "(inference-service-example.yaml.j2)"]
    assert by_rule["mlflow-drivers"] == ["Deployment mlops/mlflow (mlflow-deployment.yaml.j2)"]


def test_every_rule_has_a_broken_case():
    """A new rule must come with a broken case above; then add its id here."""
    tested = {"runtime-visibility", "s3-credentials", "selector-labels", "service-selector", "literal-credential",
              "configmap-credential", "gpu-scheduling", "gpu-resources", "mlflow-drivers", "autoscaling",
              "missing-reference", "duplicate-object"}
    assert set(RULES) == tested


# --- the KServe install plan ------------------------------------------------------

def _install_plan():
    spec = importlib.util.spec_from_file_location("install_plan", ROOT / "manifests/kserve/install_plan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("sets, layer", [([], "net-istio"), (["knative_ingress_class=kourier"], "net-kourier")])
def test_install_plan_order_and_versions(sets, layer):
    values = load_values(sets=sets).model_dump(mode="json")
    plan = _install_plan().plan(values)
    names = [s["name"] for s in plan["steps"]]
    assert names[:3] == ["cert-manager", "knative-serving-crds", "knative-serving-core"]
    assert names.index("kserve") > names.index(f"knative-networking-{values['knative_ingress_class']}")
    urls = [u for s in plan["steps"] for u in s["apply"]]
    assert f"https://github.com/cert-manager/cert-manager/releases/download/v{values['cert_manager_version']}/" \
           "cert-manager.yaml" == urls[0]
    assert any(layer in u and f"knative-v{values['knative_version']}" in u for u in urls)
    assert urls[-1] == f"https://github.com/kserve/kserve/releases/download/v{values['kserve_version']}/" \
                       "kserve-runtimes.yaml"
    assert all(s["wait"] or s["patch"] for s in plan["steps"]), "every step says what to wait for"
    assert any("kserve-system" in n for n in plan["notes"])


def test_install_plan_runtimes_file_renamed_in_0_12():
    values = load_values(sets=["kserve_version=0.13.1"]).model_dump(mode="json")
    urls = [u for s in _install_plan().plan(values)["steps"] for u in s["apply"]]
    assert urls[-1].endswith("/v0.13.1/kserve-cluster-resources.yaml")


def test_an_empty_or_plain_dump_is_told_apart_from_an_archive(tmp_path):
    """What the backup checks read from a dump's header before restoring it (pg_restore --list, no server)."""
    import shutil

    from mlops_acceptance.fixtures.capabilities.postgres import read_archive
    from mlops_acceptance.fixtures.local.postgres import find_binary

    if not shutil.which("pg_restore"):
        pytest.skip("pg_restore not found on this machine")
    pg_restore = find_binary("pg_restore")
    empty = tmp_path / "empty.dump"
    empty.write_bytes(b"")
    archive = read_archive(empty, pg_restore)
    assert not archive.readable and not archive.too_new and not archive.plain, archive
    plain = tmp_path / "plain.sql"
    plain.write_text("--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n")
    assert read_archive(plain, pg_restore).plain


# --- the gpu profile (tox -e gpu) against its cluster assumptions -------------------------

GPU_PROFILE = ROOT / "manifests" / "values" / "gpu.yaml"


def test_gpu_profile_renders_validates_and_is_not_the_defaults():
    """manifests/values/gpu.yaml is a GPU profile of its own: the GPU operator's node label, a GPU per
    replica past the GPU taint, and a CPU request the HPA can scale on; it renders and lints clean."""
    defaults, values = load_values(), load_values(files=[GPU_PROFILE])
    objects = render_manifests(values)
    assert not validate_objects(objects, values)
    predictor = one(objects, "InferenceService")["spec"]["predictor"]
    assert predictor["nodeSelector"] == {"nvidia.com/gpu.present": "true"} != defaults.kserve_gpu_node_selector
    assert "workload-type" not in predictor["nodeSelector"]
    limits, requests = predictor["model"]["resources"]["limits"], predictor["model"]["resources"]["requests"]
    assert limits["nvidia.com/gpu"] == requests["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in predictor["tolerations"]
    # One MLServer worker uses at most one core: the HPA must be able to add a replica before that.
    cpu = float(requests["cpu"].removesuffix("m")) / 1000 if requests["cpu"].endswith("m") else float(requests["cpu"])
    assert cpu * values.inference_scale_target / 100 < 1, f"the HPA could never scale at {requests['cpu']} CPU"
    assert values.inference_max_replicas > values.inference_min_replicas
    differs = {k for k in ("kserve_gpu_node_selector", "inference_cpu_request", "inference_max_replicas")
               if getattr(values, k) != getattr(defaults, k)}
    assert len(differs) == 3, differs


def test_spec_default_gpu_request_cannot_scale():
    """The broken counterpart: the spec's 2-CPU request never lets one worker reach 80 %."""
    values = load_values()
    assert float(values.inference_cpu_request) * values.inference_scale_target / 100 >= 1
