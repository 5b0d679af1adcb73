"""infra/ (Bicep) and azure.yaml, checked without Azure: parsed with pycep-parser, cross-checked with the app's own
settings and folders, and checkov's Bicep policies. (No Bicep compiler installs here: what only `az bicep build`
or a deployment could show is not checked.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pycep import BicepParser

from shared.settings import SETTING_NAMES
from tests.support import ROOT

INFRA = ROOT / "infra"
BICEP_FILES = sorted(path.name for path in INFRA.glob("*.bicep"))
HOST_SETTINGS = {"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"}  # the host's
SECRET_SETTINGS = {"TWILIO_AUTH_TOKEN", "TWILIO_API_KEY_SECRET"}
# Azure's built-in role definition IDs (the same in every tenant) of the roles the app's identity needs, by scope.
ROLES = {"storage": {"b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
                     "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
                     "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor"},
         "vault": {"4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User"},
         "appInsights": {"3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher"}}


@lru_cache(maxsize=None)
def parsed(name: str) -> dict[str, Any]:
    return BicepParser().parse(file_path=INFRA / name)


def dotted(expr: Any) -> str:
    """A property access (a.b.c) as pycep parses it, written back as text; anything else as str()."""
    if isinstance(expr, dict) and expr.get("operator", {}).get("type") == "property_accessor":
        operands = expr["operator"]["operands"]
        return f"{dotted(operands['operand_1'])}.{dotted(operands['operand_2'])}"
    return str(expr)


def settings_in(expr: Any) -> dict[str, Any]:
    """The app settings an object expression can hold: union() arguments and both branches of a condition."""
    if isinstance(expr, dict) and "function" in expr and expr["function"]["type"] == "union":
        return {k: v for arg in expr["function"]["parameters"].values() for k, v in settings_in(arg).items()}
    if isinstance(expr, dict) and expr.get("operator", {}).get("type") == "conditional":
        operands = expr["operator"]["operands"]
        return {**settings_in(operands["true_value"]), **settings_in(operands["false_value"])}
    return dict(expr)


def app_settings() -> dict[str, Any]:
    return settings_in(parsed("main.bicep")["variables"]["appSettings"]["value"])


def omitted_settings() -> dict[str, str]:
    return parsed("main.bicep")["variables"]["omittedSettings"]["value"]


def site() -> dict[str, Any]:
    return parsed("app.bicep")["resources"]["site"]["config"]


@pytest.mark.parametrize("name", BICEP_FILES)
def test_infra_bicep_file_parses(name):
    assert parsed(name)["resources"] or parsed(name)["modules"]


def test_infra_bicep_parser_rejects_a_syntax_error(tmp_path):
    broken = tmp_path / "broken.bicep"
    broken.write_text((INFRA / "app.bicep").read_text().replace("properties: {", "properties: {{", 1))
    with pytest.raises(Exception):  # noqa: B017 - lark's own error classes; any refusal will do
        BicepParser().parse(file_path=broken)


def test_infra_sets_or_omits_every_setting_the_app_declares():
    set_, omitted = set(app_settings()), set(omitted_settings())
    assert set(SETTING_NAMES) - set_ - omitted == set(), "declared in shared/settings.py, missing in infra/main.bicep"
    assert set_ & omitted == set()
    assert set_ - set(SETTING_NAMES) <= HOST_SETTINGS, "set by the template but read by nobody"
    assert omitted <= set(SETTING_NAMES) and all(len(reason) > 10 for reason in omitted_settings().values())


def test_infra_secrets_are_key_vault_references_never_plain_text():
    main = parsed("main.bicep")
    secure = {name for name, param in main["parameters"].items()
              if any(d["type"] == "secure" for d in param["decorators"])}
    assert secure == {"twilioAuthToken", "twilioApiKeySecret"}
    settings = app_settings()
    assert {str(v) for v in settings.values()} & secure == set()
    assert main["variables"]["keyVaultReference"]["value"].startswith("@Microsoft.KeyVault(SecretUri=")
    for name in SECRET_SETTINGS:
        assert settings[name].startswith("${keyVaultReference}"), name
    # the secure values go to the resources module, and there only into Key Vault secrets
    assert {k: v for k, v in main["modules"]["resources"]["config"]["params"].items() if v in secure} == {
        "twilioAuthToken": "twilioAuthToken", "twilioApiKeySecret": "twilioApiKeySecret"}
    resources = parsed("resources.bicep")["resources"]
    holders = {name: r["config"]["config"]["properties"]["value"] if r["config"].get("condition")
               else r["config"]["properties"]["value"]
               for name, r in resources.items() if r["type"] == "Microsoft.KeyVault/vaults/secrets"}
    assert sorted(holders.values()) == ["twilioApiKeySecret", "twilioAuthToken"]
    assert site()["properties"]["keyVaultReferenceIdentity"] == "identityId"


def role_assignments() -> dict[str, set[str]]:
    """scope -> the roles (by name) assigned there to the app's identity, from resources.bicep."""
    module = parsed("resources.bicep")
    role_ids = module["variables"]["roles"]["value"]
    found: dict[str, set[str]] = {}
    for resource in module["resources"].values():
        if resource["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        config = resource["config"]
        if "loop_type" in config:  # [for role in [...]: {...}]: each role of the list
            roles, config = config["loop_type"]["detail"]["array_name"], config["config"]
        else:
            roles = [config["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]]
        assert dotted(config["properties"]["principalId"]) == "identity.properties.principalId"
        scope = config["scope"]
        found.setdefault(scope, set()).update(ROLES[scope][role_ids[dotted(r).split(".")[1]]] for r in roles)
    return found


def test_infra_identity_has_the_storage_key_vault_and_metrics_roles():
    assert role_assignments() == {scope: set(names.values()) for scope, names in ROLES.items()}


def test_infra_function_app_is_flex_consumption_python_311_with_identity_storage():
    config = site()
    app = config["properties"]["functionAppConfig"]
    assert app["runtime"] == {"name": "python", "version": "3.11"}
    assert app["deployment"]["storage"]["authentication"] == {"type": "UserAssignedIdentity",
                                                             "userAssignedIdentityResourceId": "identityId"}
    assert config["properties"]["httpsOnly"] is True
    assert config["properties"]["siteConfig"]["minTlsVersion"] == "1.2"
    assert config["properties"]["siteConfig"]["ftpsState"] == "Disabled"
    plan = parsed("resources.bicep")["resources"]["plan"]["config"]
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"} and plan["properties"]["reserved"] is True
    settings = app_settings()
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert dotted(settings["AzureWebJobsStorage__clientId"]) == "resources.outputs.identityClientId"


def test_infra_storage_refuses_shared_keys_and_public_blobs():
    storage = parsed("resources.bicep")["resources"]["storage"]["config"]["properties"]
    assert (storage["allowSharedKeyAccess"], storage["allowBlobPublicAccess"], storage["supportsHttpsTrafficOnly"],
            storage["minimumTlsVersion"]) == (False, False, True, "TLS1_2")


def evaluate(expr: Any, params: dict[str, Any]) -> Any:
    """The few Bicep expressions the sign-in guard uses, evaluated as ARM would (json() of non-JSON text fails)."""
    if isinstance(expr, str):
        return params.get(expr, expr)
    if "operator" in expr:
        operands = expr["operator"]["operands"]
        branch = "true_value" if evaluate(operands["condition"], params) else "false_value"
        return evaluate(operands[branch], params)
    function, args = expr["function"]["type"], list(expr["function"]["parameters"].values())
    if function == "empty":
        return not evaluate(args[0], params)
    assert function == "json"
    return json.loads(evaluate(args[0], params))


@pytest.mark.parametrize(("issuer", "anonymous", "outcome"), [
    ("https://login.example.com/", False, "bearer"),
    ("https://login.example.com/", True, "bearer"),
    ("", True, "anonymous"),
    ("", False, ValueError),
])
def test_infra_deployment_without_sign_in_fails_unless_anonymous_callers_allowed(issuer, anonymous, outcome):
    main = parsed("main.bicep")
    guard = main["variables"]["signIn"]["value"]
    params = {"authIssuer": issuer, "allowAnonymousCallers": anonymous}
    if outcome is ValueError:
        with pytest.raises(ValueError):
            evaluate(guard, params)
    else:
        assert evaluate(guard, params) == outcome
    tags = main["modules"]["app"]["config"]["params"]["tags"]["function"]["parameters"]["arg_2"]
    assert "signIn" in tags.values()  # the app's deployment evaluates it


def test_infra_quotas_default_to_finite_values():
    params = parsed("main.bicep")["parameters"]
    assert params["quotaSmsPerDay"]["default"] > 0 and params["quotaCallsPerDay"]["default"] > 0


def test_infra_parameters_file_maps_every_parameter_to_an_azd_variable_with_the_same_default():
    params = parsed("main.bicep")["parameters"]
    mapped = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(mapped) == set(params)
    for name, param in params.items():
        match = re.fullmatch(r"\$\{([A-Z_]+)(?:=(.*))?\}", mapped[name]["value"])
        assert match, name
        default = param["default"]
        assert match[2] == (None if default is None else str(default).lower() if isinstance(default, bool)
                            else str(default)), name


def test_infra_each_setting_parameter_is_set_with_azd_env_set_under_the_setting_name():
    params = parsed("main.bicep")["parameters"]
    mapped = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    fed = 0
    for setting, value in app_settings().items():
        if isinstance(value, dict) and value.get("function", {}).get("type") == "string":  # string(intParam)
            value = next(iter(value["function"]["parameters"].values()))
        if isinstance(value, str) and value in params:
            assert re.match(r"\$\{(\w+)", mapped[value]["value"])[1] == setting, (setting, value)
            fed += 1
    assert fed > 30


def function_folders(folder: Path) -> set[str]:
    return {path.parent.name for path in folder.glob("*/function.json")}


def test_azure_yaml_deploys_exactly_the_function_folders_of_the_repo():
    config = yaml.safe_load((ROOT / "azure.yaml").read_text())
    [(name, service)] = config["services"].items()
    assert (service["host"], service["language"]) == ("function", "python")
    project = (ROOT / service["project"]).resolve()
    ignored = set((project / ".funcignore").read_text().split())
    deployed = {name for name in function_folders(project) if name not in ignored}
    assert deployed == function_folders(ROOT) and deployed
    assert {"deploy", "infra", "tests", "devtools", "azure.yaml"} <= ignored  # tooling never deployed
    for hook in config["hooks"].values():
        assert (ROOT / hook["posix"]["run"]).is_file()


CHECKOV_SKIP = re.compile(r"//\s*checkov:skip=(\w+)(:?)(.*)")


def test_infra_every_checkov_skip_is_inline_with_a_reason():
    skips = [match for name in BICEP_FILES for match in CHECKOV_SKIP.finditer((INFRA / name).read_text())]
    assert skips and all(colon and len(reason.strip()) > 15 for _, colon, reason in (m.groups() for m in skips))


@pytest.mark.slow
def test_infra_checkov_bicep_policies_report_no_failed_check_and_use_every_skip():
    result = subprocess.run([sys.executable, "-m", "checkov.main", "--framework", "bicep", "--skip-download",
                             "--compact", "-o", "json", "-d", str(INFRA)],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    report = json.loads(result.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [] and report["summary"]["failed"] == 0 and report["summary"]["parsing_errors"] == 0, failed
    skipped = sorted(c["check_id"] for c in report["results"]["skipped_checks"])
    written = sorted(m[1] for name in BICEP_FILES for m in CHECKOV_SKIP.finditer((INFRA / name).read_text()))
    assert skipped == written, "a skip that no longer applies, or one checkov did not read"
