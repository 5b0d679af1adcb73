"""The GitHub Actions workflow: actionlint finds nothing, tests run on every push, main deploys with OIDC."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
CI = ROOT / ".github" / "workflows" / "ci.yml"


def actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("actionlint", path=str(Path(sys.executable).parent))
    assert binary, "actionlint is installed by requirements-dev.txt"
    return subprocess.run([binary, "-no-color", *map(str, files)], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


def test_workflows_pass_actionlint():
    result = actionlint(*WORKFLOWS)
    assert WORKFLOWS and result.returncode == 0, result.stdout + result.stderr


def test_actionlint_flags_a_workflow_mistake(tmp_path):
    broken = tmp_path / "ci.yml"
    broken.write_text(CI.read_text().replace("${{ vars.AZURE_CLIENT_ID }}", "${{ var.AZURE_CLIENT_ID }}"))
    assert actionlint(broken).returncode == 1


def test_ci_workflow_tests_every_push_and_deploys_main_with_oidc_only():
    workflow = yaml.safe_load(CI.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "push" in triggers
    test, deploy = workflow["jobs"]["test"], workflow["jobs"]["deploy"]
    assert any(step.get("run") == "bash .ci/run" for step in test["steps"])
    assert "refs/heads/main" in deploy["if"] and deploy["needs"] == "test"
    assert deploy["permissions"]["id-token"] == "write"
    runs = " ".join(step.get("run", "") for step in deploy["steps"])
    assert "--federated-credential-provider github" in runs
    assert "azd provision --no-prompt" in runs and "azd deploy --no-prompt" in runs
    # no Azure credential is stored: the only secret is Twilio's, which provisioning puts in Key Vault
    assert set(re.findall(r"secrets\.(\w+)", CI.read_text())) == {"TWILIO_AUTH_TOKEN"}
