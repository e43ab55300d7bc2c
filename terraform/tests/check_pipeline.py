"""The pipeline, the per-environment files and the deploy walk-through, as files.

    python check_pipeline.py REPO_ROOT

Checks, without AWS:
- buildspec.yml (the Test stage) runs the README's test command,
  `bash scripts/test`, with CI=true, and none of its steps on its own (no
  second list that can drift); packages the functions with
  DOFS_LAMBDA_ARCH=arm64; never touches the deploy role; downloads
  rustup-init by pinned version and SHA-256; pins the toolchain through
  rust-toolchain.toml; runs every script through bash (a source zip may drop
  the exec bit); hands the packages and their ARCH on as its artifact;
- the Plan and Apply buildspecs build and install nothing (no cargo, pip,
  rustup, scripts/test) but Terraform through install-terraform.sh, which
  checks a pinned SHA-256; they init from envs/<env>.s3.tfbackend and plan
  envs/<env>.tfvars; the plan exports DESTRUCTIVE from plan_gate.py and
  refuses REPLACE-ME placeholders: its own check (the lines of the buildspec,
  run with bash) refuses the committed prod.tfvars and each var file that
  still holds one in a value, and passes filled-in copies whose comments
  still name the word; the apply applies the saved plan, and runs the smoke
  check with SMOKE_XRAY_REQUIRE_DLQ=1 exactly when the stack's
  simulated_failure_rate output is above 0 (its own lines, run with bash
  and a stand-in `terraform output`: 0.3 sets it, 0 does not), an output
  the root declares;
- terraform/cicd/main.tf: stages Source, Test, Plan, Approve, Apply in that
  order; Approve is a manual approval entered only when #{Plan.DESTRUCTIVE}
  is "true"; the test project uses buildspec.yml and its own role, the plan
  and apply projects the deploy buildspecs and the deploy projects' role;
  that role's policy is the only one allowing sts:AssumeRole, and the deploy
  role trusts it alone; the source stage may put object ACLs and tags; no
  unused CodeBuild report permissions; no role but the source stage's
  (the pipeline role) may write the source artifact's prefix: the test
  role writes only the packages and its build cache, the deploy projects'
  role only the plan, the deploy role only the state bucket; the Approve
  stage's message, with the longest stack name variables.tf allows and a
  PLAN_SUMMARY of plan_gate.py's SUMMARY_LIMIT, fits CodePipeline's 500
  characters, and plan_gate.py never exceeds SUMMARY_LIMIT;
- the Python tools: tools/requirements.txt and
  tools/schemathesis-requirements.txt pin every package with == and
  SHA-256 hashes, and pin exactly the versions of their .in files (the one
  place the tools are pinned); scripts/tools.sh installs only those locks,
  with --require-hashes --no-deps, and pins nothing itself;
- envs/: for every environment variables.tf allows, <env>.tfvars sets that
  environment and <env>.s3.tfbackend the key <name_prefix>/<env>.tfstate
  with use_lockfile and encrypt; all stack and pipeline keys are distinct;
  cicd/envs/ likewise;
- every `#checkov:skip` under terraform/ gives its reason;
- terraform/README.md: every command in it refers to files that exist, to
  variables the root it runs in declares and to outputs it has, with $ENV
  taken as each environment; no command passes a state key by hand.
Exits non-zero listing every problem.
"""

import fnmatch
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

import hcl2
import yaml

problems = []


def problem(msg):
    if msg not in problems:
        problems.append(msg)


def path(*parts):
    return os.path.join(REPO, *parts)


def read(*parts):
    with open(path(*parts), encoding="utf-8") as f:
        return f.read()


def one(value):
    """python-hcl2 wraps attribute values in one-element lists."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def as_list(value):
    """An attribute that is a list of strings, however python-hcl2 wrapped it."""
    value = one(value)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def environments():
    """The environments variables.tf allows (its `contains([...], var.environment)`)."""
    variables = blocks(hcl("terraform", "variables.tf"), "variable")
    condition = one(one(one(variables["environment"]).get("validation")).get("condition"))
    return re.findall(r"""['"](\w+)['"]""", condition)


def hcl(*parts):
    with open(path(*parts), encoding="utf-8") as f:
        return hcl2.load(f)


def blocks(doc, kind, type_name=None):
    """{name: body} of `resource`/`data` blocks of one type, or of variables/outputs."""
    out = {}
    for block in doc.get(kind, []):
        for key, value in block.items():
            if type_name is None:
                out[key] = value
            elif key == type_name:
                out.update(value)
    return out


def root_declarations(root):
    variables, outputs = set(), set()
    for name in os.listdir(path(root)):
        if name.endswith(".tf"):
            doc = hcl(root, name)
            variables |= set(blocks(doc, "variable"))
            outputs |= set(blocks(doc, "output"))
    return variables, outputs


def commands(text):
    """All shell commands of a buildspec phase list (one string each)."""
    return "\n".join(str(c) for c in text)


# --- buildspecs --------------------------------------------------------------------------


def buildspec(rel):
    spec = yaml.safe_load(read(rel))
    phases = spec.get("phases", {})
    text = "\n".join(commands(p.get("commands", [])) for p in phases.values())
    return spec, text


def scripts_through_bash(rel, text):
    for m in re.finditer(r"(\S*)\s+((?:scripts|terraform/cicd)/[\w./-]+)", text):
        before, script = m.group(1), m.group(2)
        if script.endswith((".sh",)) or script == "scripts/test":
            if before not in ("bash", ".") and not before.endswith("="):
                problem(f"{rel}: {script} is run as `{before} {script}`, not through bash (the exec bit may be lost)")
            if not os.path.exists(path(script)):
                problem(f"{rel}: {script} does not exist")


def check_test_buildspec():
    rel = "buildspec.yml"
    spec, text = buildspec(rel)
    variables = spec.get("env", {}).get("variables", {})
    if str(variables.get("CI")) != "true":
        problem(f"{rel}: CI must be \"true\" so no suite skips for a missing tool (it is {variables.get('CI')!r})")
    runs = re.findall(r"^\s*bash scripts/test\s*$", text, re.M)
    if len(runs) != 1:
        problem(f"{rel}: must run `bash scripts/test` exactly once, runs it {len(runs)} times")
    for step in ("cargo fmt", "cargo clippy", "cargo test", "cargo build", "terraform fmt", "terraform validate", "checkov", "statelint"):
        if step in text:
            problem(f"{rel}: runs `{step}` itself; scripts/test is the one list of steps")
    if not re.search(r"^\s*DOFS_LAMBDA_ARCH=arm64 bash scripts/package-lambdas\.sh\s*$", text, re.M):
        problem(f"{rel}: must package with `DOFS_LAMBDA_ARCH=arm64 bash scripts/package-lambdas.sh` (fail rather than fall back to x86_64)")
    for word in ("DEPLOY_ROLE_ARN", "assume-role", "assume-deploy-role", "terraform apply", "terraform plan"):
        if word in text:
            problem(f"{rel}: the Test stage must not deploy ({word})")
    sha = str(variables.get("RUSTUP_INIT_SHA256", ""))
    if not re.fullmatch(r"[0-9a-f]{64}", sha) or "sha256sum -c" not in text:
        problem(f"{rel}: rustup-init must be verified against a pinned SHA-256 (RUSTUP_INIT_SHA256 and sha256sum -c)")
    if not re.fullmatch(r"\d+\.\d+\.\d+", str(variables.get("RUSTUP_VERSION", ""))) or "rustup/archive/${RUSTUP_VERSION}/" not in text:
        problem(f"{rel}: rustup-init must come from a pinned version (rustup/archive/${{RUSTUP_VERSION}}/)")
    if "sh.rustup.rs" in text or re.search(r"\|\s*(sh|bash)\b", text):
        problem(f"{rel}: pipes a download into a shell")
    if "rust-toolchain.toml" not in text:
        problem(f"{rel}: must install the toolchain rust-toolchain.toml pins")
    if "bash terraform/cicd/install-terraform.sh" not in text:
        problem(f"{rel}: must install Terraform through terraform/cicd/install-terraform.sh (pinned, checksummed)")
    files = spec.get("artifacts", {}).get("files", [])
    if "target/lambda/ARCH" not in files or "target/lambda/*/bootstrap.zip" not in files:
        problem(f"{rel}: its artifact must be the packages and their ARCH, has {files}")
    scripts_through_bash(rel, text)


def check_toolchain():
    toml = read("rust-toolchain.toml")
    channel = re.search(r'^channel\s*=\s*"([^"]+)"', toml, re.M)
    if not channel or not re.fullmatch(r"\d+\.\d+\.\d+", channel.group(1)):
        problem("rust-toolchain.toml: channel must be an exact release (x.y.z), not a moving channel")
    for component in ("rustfmt", "clippy"):
        if component not in toml:
            problem(f"rust-toolchain.toml: component {component} (scripts/test runs it) is not listed")


def check_install_terraform():
    text = read("terraform", "cicd", "install-terraform.sh")
    version = re.search(r'^version="(\d+\.\d+\.\d+)"', text, re.M)
    sha = re.search(r'^sha256="([0-9a-f]{64})"', text, re.M)
    if not version or not sha or "sha256sum -c" not in text:
        problem("terraform/cicd/install-terraform.sh: needs a pinned version, its SHA-256 and sha256sum -c")
    return version.group(1) if version else None


def check_deploy_buildspecs():
    for stage in ("plan", "apply"):
        rel = f"terraform/cicd/buildspec-{stage}.yml"
        spec, text = buildspec(rel)
        for word in ("cargo", "pip", "rustup", "scripts/test", "package-lambdas", "npm", "curl", "wget", "tools.sh"):
            if re.search(rf"(^|[\s/]){re.escape(word)}\b", text):
                problem(f"{rel}: runs with deploy rights, so it must not build or download anything ({word})")
        if "bash terraform/cicd/install-terraform.sh" not in text:
            problem(f"{rel}: must install Terraform through terraform/cicd/install-terraform.sh")
        if ". terraform/cicd/assume-deploy-role.sh" not in text:
            problem(f"{rel}: must take the deploy role through terraform/cicd/assume-deploy-role.sh")
        if '-backend-config="envs/${DOFS_ENVIRONMENT}.s3.tfbackend"' not in text or "key=" in text:
            problem(f"{rel}: must init with envs/${{DOFS_ENVIRONMENT}}.s3.tfbackend, and never pass a key itself")
        if "-lockfile=readonly" not in text:
            problem(f"{rel}: terraform init must keep the provider lock (-lockfile=readonly)")
        scripts_through_bash(rel, text)
        if stage == "plan":
            exported = spec.get("env", {}).get("exported-variables", [])
            if "DESTRUCTIVE" not in exported or "cicd/plan_gate.py" not in text:
                problem(f"{rel}: must export DESTRUCTIVE computed by plan_gate.py")
            if '-var-file="envs/${DOFS_ENVIRONMENT}.tfvars"' not in text or "-out=tfplan" not in text:
                problem(f"{rel}: must plan envs/${{DOFS_ENVIRONMENT}}.tfvars into tfplan")
            if "REPLACE-ME" not in text:
                problem(f"{rel}: must refuse a var file that still holds REPLACE-ME placeholders")
            if "terraform/tfplan" not in spec.get("artifacts", {}).get("files", []):
                problem(f"{rel}: must hand the plan on as its artifact")
        else:
            if not re.search(r"terraform apply -input=false tfplan\b", text):
                problem(f"{rel}: must apply the saved plan (terraform apply tfplan), nothing else")
            if "CODEBUILD_SRC_DIR_plan" not in text or "CODEBUILD_SRC_DIR_packages" not in text:
                problem(f"{rel}: must take the plan and the packages from the Plan and Test stages")
            check_smoke_dlq_flag(rel, text)


def smoke_dlq_flag(text):
    """The apply buildspec's lines deciding SMOKE_XRAY_REQUIRE_DLQ: from
    `failure_rate=` to the `fi` closing the `if` after it, as written there."""
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if re.match(r"\s*failure_rate=", l)), None)
    end = next((i for i, l in enumerate(lines) if start is not None and i > start and re.fullmatch(r"\s*fi\s*", l)), None)
    if end is None:
        return None
    block = lines[start : end + 1]
    indent = min(len(l) - len(l.lstrip()) for l in block if l.strip())
    return "\n".join(l[indent:] for l in block)


def check_smoke_dlq_flag(rel, text):
    snippet = smoke_dlq_flag(text)
    smoke = text.find("scripts/smoke-xray.sh\"")
    if snippet is None or smoke < 0 or text.find(snippet.splitlines()[0]) > smoke:
        problem(f"{rel}: must set SMOKE_XRAY_REQUIRE_DLQ from the simulated_failure_rate output before the smoke check")
        return
    outputs = root_declarations("terraform")[1]
    for name in re.findall(r"terraform output (?:-raw |-json )?([\w-]+)", snippet):
        if name not in outputs:
            problem(f"{rel}: `terraform output {name}`: no such output in terraform/")
    for rate, expected in (("0.3", "1"), ("1", "1"), ("0", ""), ("0.0", "")):
        stand_in = f"terraform() {{ printf '%s' '{rate}'; }}\n"
        result = subprocess.run(
            ["bash", "-c", "set -euo pipefail\nunset SMOKE_XRAY_REQUIRE_DLQ\n" + stand_in + snippet
             + '\nprintf "%s" "${SMOKE_XRAY_REQUIRE_DLQ:-}"'],
            capture_output=True, text=True,
        )
        if result.returncode != 0 or result.stdout != expected:
            problem(f"{rel}: at simulated_failure_rate {rate} the smoke check must run with "
                    f"SMOKE_XRAY_REQUIRE_DLQ={expected or '(unset)'}, got {result.stdout or '(unset)'} "
                    f"(exit {result.returncode}: {result.stderr.strip()})")


def placeholder_check(text):
    """The plan buildspec's own placeholder check: its lines from `vars=` to
    the `fi` closing the `if` that names REPLACE-ME, as written there."""
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if re.match(r"\s*vars=", l)), None)
    check = next((i for i, l in enumerate(lines) if start is not None and i > start and re.match(r"\s*if .*REPLACE-ME", l)), None)
    end = next((i for i, l in enumerate(lines) if check is not None and i > check and re.fullmatch(r"\s*fi\s*", l)), None)
    if end is None:
        return None
    block = lines[start : end + 1]
    indent = min(len(l) - len(l.lstrip()) for l in block if l.strip())
    return "\n".join(l[indent:] for l in block)


def run_placeholder_check(snippet, env, content):
    """True when the buildspec's check lets `content`, as
    terraform/envs/<env>.tfvars, through to the plan."""
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "terraform", "envs"))
        with open(os.path.join(tmp, "terraform", "envs", f"{env}.tfvars"), "w", encoding="utf-8") as f:
            f.write(content)
        result = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + snippet],
            cwd=tmp, env={**os.environ, "DOFS_ENVIRONMENT": env}, capture_output=True, text=True,
        )
    return result.returncode == 0


def filled_in(content):
    """A var file with every REPLACE-ME outside comments replaced, as an
    operator does before the first deploy; the comments keep the word."""
    return "\n".join(
        line if line.lstrip().startswith("#") else line.replace("REPLACE-ME", "filled-in")
        for line in content.split("\n")
    )


def check_placeholder_refusal():
    rel = "terraform/cicd/buildspec-plan.yml"
    _, text = buildspec(rel)
    snippet = placeholder_check(text)
    if snippet is None:
        problem(f"{rel}: no `vars=...` then `if ... REPLACE-ME ...; then ... fi` block to test")
        return
    if not re.search(r'^vars="terraform/envs/\$\{DOFS_ENVIRONMENT\}\.tfvars"$', snippet, re.M):
        problem(f"{rel}: the placeholder check must read terraform/envs/${{DOFS_ENVIRONMENT}}.tfvars")
    for env in environments():
        rel_vars = f"terraform/envs/{env}.tfvars"
        if not os.path.exists(path(rel_vars)):
            continue
        committed = read(rel_vars)
        in_values = "REPLACE-ME" in json.dumps(hcl_values(rel_vars))
        if env == "prod" and not in_values:
            problem(f"{rel_vars}: expected REPLACE-ME placeholders in its values (the operator's own JWT issuer, audience and on-call address)")
        if run_placeholder_check(snippet, env, committed) == in_values:
            problem(f"{rel}: its placeholder check {'passes' if in_values else 'refuses'} the committed {rel_vars}, which {'holds' if in_values else 'holds no'} REPLACE-ME in a value")
        filled = filled_in(committed)
        with tempfile.NamedTemporaryFile("w", suffix=".tfvars", encoding="utf-8", delete=False) as f:
            f.write(filled)
        try:
            with open(f.name, encoding="utf-8") as g:
                filled_values = hcl2.load(g)
        finally:
            os.unlink(f.name)
        if "REPLACE-ME" in json.dumps(filled_values):
            problem(f"check_pipeline.py: the filled-in copy of {rel_vars} still holds REPLACE-ME in a value")
        if not run_placeholder_check(snippet, env, filled):
            problem(f"{rel}: its placeholder check refuses a filled-in copy of {rel_vars} (REPLACE-ME left only in comments): staging/prod could never plan")
        if env == "prod" and "REPLACE-ME" not in filled:
            problem(f"{rel_vars}: its comments no longer name REPLACE-ME, so the filled-in copy no longer tests that comments are ignored")


# --- the CI/CD root ----------------------------------------------------------------------


def statements(doc):
    return [one(s) if isinstance(s, list) else s for s in doc.get("statement", [])]


def s3_put_actions(actions):
    """The actions of a list that allow s3:PutObject (wildcards included)."""
    return [a for a in actions if fnmatch.fnmatchcase("s3:putobject", a.lower())]


# How main.tf lays the artifact bucket out (checked against its locals), in
# symbols: the bucket's ARN and the pipeline's folder (the first 20
# characters of its name) stand for whatever they are in an account.
BUCKET_ARN = "arn:aws:s3:::ARTIFACT-BUCKET"
PIPELINE_FOLDER = "PIPELINE-FOLDER"
ARTIFACT_LOCALS = {
    "pipeline_name": "${local.name}-pipeline",
    "artifact_prefix": "${aws_s3_bucket.artifacts.arn}/${substr(local.pipeline_name, 0, 20)}",
    "build_cache_objects": "${aws_s3_bucket.artifacts.arn}/${local.build_cache_prefix}/*",
}


def artifact_object(artifact):
    return f"{BUCKET_ARN}/{PIPELINE_FOLDER}/{artifact}/*"


def resolve_s3_resources(resources, cache_prefix):
    """The ARN patterns of a statement's resources as written in main.tf, in
    the symbols above; None for an expression this check cannot read (which
    then counts as "anything")."""
    out = []
    for expr in resources:
        m = re.fullmatch(r'\$\{local\.artifact_objects\["([\w-]+)"\]\}', expr)
        if m:
            out.append(artifact_object(m.group(1)))
            continue
        if expr == "${local.build_cache_objects}":
            out.append(f"{BUCKET_ARN}/{cache_prefix}/*")
            continue
        m = re.fullmatch(r"\$\{\[for (\w+) in \[([^\]]*)\] : local\.artifact_objects\[\1\]\]\}", expr)
        if m:
            out.extend(artifact_object(a) for a in re.findall(r"""['"]([\w-]+)['"]""", m.group(2)))
            continue
        if expr.startswith("${aws_s3_bucket.artifacts.arn}") and "${" not in expr[len("${aws_s3_bucket.artifacts.arn}"):]:
            out.append(BUCKET_ARN + expr[len("${aws_s3_bucket.artifacts.arn}"):])
            continue
        if expr in ("${aws_s3_bucket.artifacts.arn}", "${aws_kms_key.pipeline.arn}") or not expr.startswith(("${", "arn:", "*")):
            out.append(expr)
            continue
        return None
    return out


def check_artifact_writes(doc, policies, pipeline):
    """No role but the source stage's may write the source artifact: the
    Plan and Apply projects run it with the deploy role."""
    local_values = {}
    for block in doc.get("locals", []):
        local_values.update({k: one(v) for k, v in block.items()})
    for name, want in ARTIFACT_LOCALS.items():
        if local_values.get(name) != want:
            problem(f"cicd: local.{name} is {local_values.get(name)!r}; check_pipeline.py reads the artifact layout as {want!r}")
    objects = str(local_values.get("artifact_objects", ""))
    if '=> "${local.artifact_prefix}/${artifact}/*"' not in objects:
        problem(f"cicd: local.artifact_objects must map each artifact to ${{local.artifact_prefix}}/<artifact>/*, is {objects!r}")
    cache_prefix = local_values.get("build_cache_prefix")
    projects = blocks(doc, "resource", "aws_codebuild_project")
    cache = one(one(projects.get("test", {})).get("cache", {})) or {}
    if one(cache.get("location")) != "${aws_s3_bucket.artifacts.bucket}/${local.build_cache_prefix}":
        problem("cicd: the test project's cache must be at ${aws_s3_bucket.artifacts.bucket}/${local.build_cache_prefix} (what its role may write)")
    if one(pipeline.get("name")) != "${local.pipeline_name}":
        problem("cicd: the pipeline must be named local.pipeline_name (its artifact folder is derived from it)")

    stages = {one(st.get("name")): st for st in (one(x) for x in pipeline.get("stage", []))}
    outputs = {}
    for stage_name, stage in stages.items():
        for action in (one(a) for a in stage.get("action", [])):
            for artifact in as_list(action.get("output_artifacts")):
                outputs[artifact] = stage_name
                if len(artifact) > 8:
                    problem(f"cicd: artifact {artifact} is longer than 8 characters: CodePipeline truncates long artifact names in its S3 folder, which the roles' prefixes do not follow")
    if outputs.get("source") != "Source":
        problem(f"cicd: the source artifact must come from the Source stage, outputs are {outputs}")
    source_object = f"{BUCKET_ARN}/{PIPELINE_FOLDER}/source/AbCdEf1"
    # Who may write, and what each role must be able to write.
    allowed_writers = {"pipeline"}
    must_write = {"codebuild_test": {artifact_object("packages"), f"{BUCKET_ARN}/{cache_prefix}/*"}, "codebuild_deploy": {artifact_object("plan")}}
    for name, body in policies.items():
        writes = set()
        for st in statements(one(body)):
            if one(st.get("effect")) == "Deny":
                continue
            if "not_actions" in st or "not_resources" in st:
                problem(f"cicd: policy {name} uses not_actions/not_resources; check_pipeline.py cannot tell what it lets write")
                continue
            if not s3_put_actions(as_list(st.get("actions"))):
                continue
            if "principals" in st:
                problem(f"cicd: resource policy {name} allows s3:PutObject to its principals; only the pipeline role may write the source artifact")
                continue
            resources = resolve_s3_resources(as_list(st.get("resources")), cache_prefix)
            if resources is None:
                problem(f"cicd: policy {name} allows s3:PutObject on {as_list(st.get('resources'))}, which check_pipeline.py cannot read; use local.artifact_objects[...] or local.build_cache_objects")
                continue
            writes |= set(resources)
        if name in allowed_writers:
            if not any(fnmatch.fnmatchcase(source_object, r) for r in writes):
                problem(f"cicd: the source stage's role ({name}) cannot write the source artifact")
            continue
        for r in writes:
            if fnmatch.fnmatchcase(source_object, r) or r in ("*", "arn:aws:s3:::*"):
                problem(f"cicd: policy {name} may write the source artifact ({r}), which the Plan and Apply projects run with the deploy role")
        if name in must_write and writes != must_write[name]:
            problem(f"cicd: policy {name} may write {sorted(writes)}, should be exactly {sorted(must_write[name])}")
    if outputs.get("packages") != "Test" or outputs.get("plan") != "Plan":
        problem(f"cicd: the packages come from Test and the plan from Plan (the roles' write grants), outputs are {outputs}")

    # The deploy role (assumed by plan and apply) writes only the state bucket.
    template = read("terraform", "cicd", "deploy-role-policy.json.tftpl")
    for m in re.finditer(r'"(arn:\$\{partition\}:s3:::[^"]*)"', template):
        if not m.group(1).startswith("arn:${partition}:s3:::${state_bucket}"):
            problem(f"cicd: the deploy role's policy names an S3 resource outside the state bucket: {m.group(1)}")
    if re.search(r'"Action":\s*\[[^\]]*"s3:(\*|Put\*)"', template):
        problem("cicd: the deploy role's policy has a wildcard S3 write action")


def name_prefix_max_length():
    """The longest name_prefix terraform/variables.tf accepts (its validation
    regex ^[a-z][a-z0-9-]{m,n}$)."""
    text = read("terraform", "variables.tf")
    m = re.search(r'variable "name_prefix".*?regex\("\^\[a-z\]\[a-z0-9-\]\{(\d+),(\d+)\}\$"', text, re.S)
    return 1 + int(m.group(2)) if m else None


def load_plan_gate():
    spec = importlib.util.spec_from_file_location("plan_gate", path("terraform", "cicd", "plan_gate.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_approval_message(doc, approve_action):
    """CodePipeline takes at most 500 characters of an approval's CustomData."""
    local_values = {}
    for block in doc.get("locals", []):
        local_values.update({k: one(v) for k, v in block.items()})
    config = one(approve_action.get("configuration", {})) or {}
    if config.get("CustomData") != "${local.approval_message}":
        problem("cicd: the Approve action's CustomData must be local.approval_message (what this check measures)")
    message = str(local_values.get("approval_message", ""))
    longest_prefix = name_prefix_max_length()
    if longest_prefix is None:
        problem("terraform/variables.tf: cannot read the longest name_prefix its validation allows")
        return
    longest_stack = longest_prefix + 1 + max(len(e) for e in environments())
    gate = load_plan_gate()
    limit = gate.SUMMARY_LIMIT
    worst = message.replace("${local.stack_name}", "s" * longest_stack).replace("#{Plan.PLAN_SUMMARY}", "p" * limit)
    if "#{Plan.PLAN_SUMMARY}" not in message or "${" in worst or "#{" in worst:
        problem(f"cicd: the approval message must hold #{{Plan.PLAN_SUMMARY}} and no other variable than local.stack_name: {message!r}")
    if max(len(worst), len(message)) > 500:
        problem(f"cicd: the approval message can be {len(worst)} characters (stack name {longest_stack}, SUMMARY_LIMIT {limit}); CodePipeline takes 500")
    # plan_gate.py keeps to its limit on a plan with many long addresses.
    plan = {"resource_changes": [
        {"address": f'module.functions["fulfill_order"].aws_lambda_function.this[{i}]', "change": {"actions": ["delete", "create"]}}
        for i in range(200)
    ]}
    destructive, summary = gate.gate(plan)
    if not destructive or len(summary) > limit:
        problem(f"terraform/cicd/plan_gate.py: a summary of {len(summary)} characters exceeds SUMMARY_LIMIT {limit}")
    if "#{Plan.PLAN_SUMMARY}" in str(local_values.get("plan_summary_limit", "")) or "SUMMARY_LIMIT" not in str(local_values.get("plan_summary_limit", "")):
        problem("cicd: local.plan_summary_limit must read SUMMARY_LIMIT from plan_gate.py (the precondition on the pipeline)")


def check_cicd():
    doc = hcl("terraform", "cicd", "main.tf")
    text = read("terraform", "cicd", "main.tf")
    policies = blocks(doc, "data", "aws_iam_policy_document")
    assumers = []
    for name, body in policies.items():
        for st in statements(one(body)):
            actions = as_list(st.get("actions"))
            if "sts:AssumeRole" in actions and "principals" not in st:
                assumers.append(name)
    if assumers != ["codebuild_deploy"]:
        problem(f"cicd: only the deploy projects' policy may allow sts:AssumeRole, found {assumers}")
    trust = statements(one(policies.get("deploy_assume", {})))
    principals = [one(one(p).get("identifiers")) for st in trust for p in st.get("principals", [])]
    if principals != ["${aws_iam_role.codebuild_deploy.arn}"]:
        problem(f"cicd: the deploy role must trust the deploy projects' role alone, trusts {principals}")
    pipeline_statements = statements(one(policies.get("pipeline", {})))
    pipeline_actions = {a for st in pipeline_statements for a in as_list(st.get("actions"))}
    for needed in ("s3:PutObjectAcl", "s3:PutObjectTagging", "codestar-connections:UseConnection"):
        if needed not in pipeline_actions:
            problem(f"cicd: the pipeline role lacks {needed} (the CodeStar source upload needs it)")
    if re.search(r"codebuild:\w*Report", text):
        problem("cicd: CodeBuild report permissions without a reports: section in any buildspec")

    projects = blocks(doc, "resource", "aws_codebuild_project")
    test = one(projects.get("test", {}))
    if one(one(test.get("source", {})).get("buildspec")) != "buildspec.yml" or one(test.get("service_role")) != "${aws_iam_role.codebuild_test.arn}":
        problem("cicd: the test project must run buildspec.yml with the codebuild_test role")
    deploy = one(projects.get("deploy", {}))
    if one(deploy.get("service_role")) != "${aws_iam_role.codebuild_deploy.arn}":
        problem("cicd: the plan and apply projects must run with the codebuild_deploy role")
    for stage in ("plan", "apply"):
        if f'buildspec   = "terraform/cicd/buildspec-{stage}.yml"' not in text:
            problem(f"cicd: no deploy project runs terraform/cicd/buildspec-{stage}.yml")
    test_policy = one(policies.get("codebuild_test", {}))
    if any("sts:AssumeRole" in as_list(st.get("actions")) for st in statements(test_policy)):
        problem("cicd: the test project's role may assume a role")

    pipeline = one(blocks(doc, "resource", "aws_codepipeline").get("main", {}))
    stages = [one(s) for s in pipeline.get("stage", [])]
    names = [one(s.get("name")) for s in stages]
    if names != ["Source", "Test", "Plan", "Approve", "Apply"]:
        problem(f"cicd: stages must be Source, Test, Plan, Approve, Apply; are {names}")
        return
    by_name = dict(zip(names, stages))
    plan_action = one(by_name["Plan"]["action"])
    if one(plan_action.get("namespace")) != "Plan":
        problem("cicd: the Plan action's namespace must be Plan (for #{Plan.DESTRUCTIVE})")
    approve = by_name["Approve"]
    action = one(approve.get("action"))
    if one(action.get("category")) != "Approval" or one(action.get("provider")) != "Manual":
        problem("cicd: the Approve stage must be a manual approval")
    condition = one(one(one(approve.get("before_entry", [{}])).get("condition", [{}])))
    rule = one(condition.get("rule", [{}]))
    config = one(rule.get("configuration", {})) or {}
    provider = one(one(rule.get("rule_type_id", [{}])).get("provider"))
    if (one(condition.get("result")), provider, config.get("Variable"), config.get("Operator"), config.get("Value")) != (
        "SKIP", "VariableCheck", "#{Plan.DESTRUCTIVE}", "EQ", "true"
    ):
        problem("cicd: the Approve stage must be skipped unless #{Plan.DESTRUCTIVE} EQ true (VariableCheck, result SKIP)")
    apply_inputs = as_list(one(by_name["Apply"]["action"]).get("input_artifacts"))
    if set(apply_inputs) != {"source", "packages", "plan"}:
        problem(f"cicd: the Apply stage must take source, packages and plan, takes {apply_inputs}")
    check_artifact_writes(doc, policies, pipeline)
    check_approval_message(doc, action)


# --- the Python tools' locks ---------------------------------------------------------------


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(rel):
    """{name: version} of a requirements .in file (name==version lines)."""
    pins = {}
    for n, line in enumerate(read(rel).splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[\w,.-]+\])?==([\w.!+-]+)", line)
        if not m:
            problem(f"{rel}:{n}: `{line}` is not name==version (the one place the tools are pinned, exactly)")
            continue
        pins[normalize(m.group(1))] = m.group(3)
    return pins


def read_lock(rel):
    """[(name, version, marker, hashes)] of a hash-locked requirements file."""
    entries, current = [], None
    logical = re.sub(r"\\\n", " ", read(rel))
    for n, line in enumerate(logical.splitlines(), 1):
        line = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not line or line.startswith("--index-url"):
            continue
        m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([\w.!+-]+)\s*(;[^-]*)?(.*)$", line)
        if not m:
            problem(f"{rel}: `{line[:80]}` is not a pinned requirement (name==version --hash=...)")
            continue
        hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})", m.group(4))
        rest = re.sub(r"--hash=sha256:[0-9a-f]{64}", "", m.group(4)).strip()
        if rest:
            problem(f"{rel}: {m.group(1)}: unexpected options {rest!r}")
        entries.append((normalize(m.group(1)), m.group(2), (m.group(3) or "").strip("; "), hashes))
    return entries


def check_tool_locks():
    script = read("scripts", "tools.sh")
    for lock_in, lock in (("tools/requirements.in", "tools/requirements.txt"), ("tools/schemathesis-requirements.in", "tools/schemathesis-requirements.txt")):
        if not os.path.exists(path(lock_in)) or not os.path.exists(path(lock)):
            problem(f"{lock_in} and {lock} must both exist")
            continue
        if "pip-compile" not in read(lock_in) and "uv pip compile" not in read(lock_in):
            problem(f"{lock_in}: must say how to regenerate {lock} (pip-compile / uv pip compile --generate-hashes)")
        pins = read_pins(lock_in)
        entries = read_lock(lock)
        if not entries:
            problem(f"{lock}: no requirements")
        locked = {}
        for name, version, marker, hashes in entries:
            locked.setdefault(name, set()).add(version)
            if not hashes:
                problem(f"{lock}: {name}=={version} has no --hash (pip --require-hashes refuses it)")
        for name, version in pins.items():
            if locked.get(name) != {version}:
                problem(f"{lock}: {name} is locked at {sorted(locked.get(name, []))}, {lock_in} pins {version}: regenerate the lock ({lock_in} says how)")
        if os.path.basename(lock) not in script:
            problem(f"scripts/tools.sh: does not install {lock}")
    locked_install = re.search(r"^locked_install=\((.*)\)$", script, re.M)
    options = shlex.split(locked_install.group(1)) if locked_install else []
    for option in ("--require-hashes", "--no-deps"):
        if option not in options:
            problem(f"scripts/tools.sh: its pip install (locked_install) lacks {option}")
    installs = [l for l in script.splitlines() if re.search(r"\bpip\b.*\binstall\b|\bpip\b.*locked_install", l) and not l.lstrip().startswith("#")]
    for line in installs:
        if '"${locked_install[@]}" -r "$' not in line:
            problem(f"scripts/tools.sh: `{line.strip()}` installs something other than a lock with hashes")
    if len(installs) != 2:
        problem(f"scripts/tools.sh: expected two locked installs (the tools, schemathesis), found {len(installs)}")
    if re.search(r"^[^#]*==\d", script, re.M):
        problem("scripts/tools.sh: pins a version itself; tools/*.in are the one place")


# --- envs ----------------------------------------------------------------------------------


def hcl_values(*parts):
    return {k: one(v) for k, v in hcl(*parts).items()}


def check_envs():
    envs = environments()
    if not envs:
        problem("variables.tf: cannot read the environments its validation allows")
    keys = {}
    for root, prefix in (("terraform", None), ("terraform/cicd", "cicd")):
        for env in envs:
            tfvars = f"{root}/envs/{env}.tfvars"
            backend = f"{root}/envs/{env}.s3.tfbackend"
            for rel in (tfvars, backend):
                if not os.path.exists(path(rel)):
                    problem(f"{rel} is missing")
            if not os.path.exists(path(tfvars)) or not os.path.exists(path(backend)):
                continue
            values = hcl_values(tfvars)
            if values.get("environment") != env:
                problem(f"{tfvars}: environment = {values.get('environment')!r}, not {env!r}")
            settings = hcl_values(backend)
            name_prefix = hcl_values(f"terraform/envs/{env}.tfvars").get("name_prefix", "dofs")
            want = f"{name_prefix}/{env}.tfstate" if prefix is None else f"{name_prefix}/cicd/{env}.tfstate"
            if settings.get("key") != want:
                problem(f"{backend}: key {settings.get('key')!r}, the convention says {want!r}")
            if settings.get("use_lockfile") is not True or settings.get("encrypt") is not True:
                problem(f"{backend}: use_lockfile and encrypt must be true")
            if set(settings) - {"key", "use_lockfile", "encrypt"}:
                problem(f"{backend}: only key, use_lockfile and encrypt belong here (the bucket and region are the account's)")
            keys.setdefault(settings.get("key"), []).append(backend)
    for key, files in keys.items():
        if len(files) > 1:
            problem(f"state key {key} is shared by {files}")


def check_checkov_skips():
    for root, _, files in os.walk(path("terraform")):
        if "/tests" in root or "/." in root:
            continue
        for name in files:
            if not name.endswith(".tf"):
                continue
            rel = os.path.relpath(os.path.join(root, name), REPO)
            for n, line in enumerate(read(rel).splitlines(), 1):
                m = re.search(r"#checkov:skip=([A-Z0-9_]+)(?::(.*))?", line)
                if m and len((m.group(2) or "").strip()) < 30:
                    problem(f"{rel}:{n}: checkov skip {m.group(1)} without a reason")


# --- the README walk-through ---------------------------------------------------------------


def readme_commands(text):
    """Shell lines of the README's code blocks (indented or fenced), with
    backslash continuations joined; "#" for each heading (where a reader
    starts again from the repository root)."""
    lines, fenced, previous = [], False, ""
    for line in text.splitlines():
        # An indented line is code when it follows a blank line or code (a
        # list item's continuation follows its item).
        code = line.startswith("    ") and (previous == "" or (lines and lines[-1] not in ("", "#")))
        previous = line.strip() if not code else previous
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced or code:
            lines.append(line.strip())
        elif line.startswith("#"):
            lines.extend(["", "#", ""])
        else:
            lines.append("")
    joined, current = [], ""
    for line in lines:
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            joined.append(current.strip())
        current = ""
    return joined


def check_readme(envs):
    rel = "terraform/README.md"
    declarations = {root: root_declarations(root) for root in ("terraform", "terraform/cicd")}
    cwd = "."
    for command in readme_commands(read(rel)):
        if command == "#":
            cwd = "."
            continue
        command = command.split(" #", 1)[0]
        for env in envs:
            line = command.replace("${ENV}", env).replace("$ENV", env)
            where = os.path.normpath(cwd)
            check_readme_line(rel, line, where, declarations)
        words = command.split()
        if words and words[0] == "cd":
            target = os.path.normpath(os.path.join(cwd, words[1]))
            if not os.path.isdir(path(target)):
                problem(f"{rel}: `cd {words[1]}` from {cwd}: no such directory")
            cwd = target
    # Files the prose names.
    for token in re.findall(r"`([\w./<>*-]+/[\w./<>*-]+\.(?:tf|tfvars|tfbackend|tftpl|yml|sh|py|json|toml|md))`", read(rel)):
        if "*" in token or "<fn>" in token or token.startswith("<"):
            continue
        for env in envs:
            name = token.replace("<env>", env).replace("<environment>", env)
            if not any(os.path.exists(path(base, name)) for base in (".", "terraform", "terraform/cicd")):
                problem(f"{rel}: `{token}` names no file")


def check_readme_line(rel, line, cwd, declarations):
    for sub in re.findall(r"\$\(terraform output (?:-raw |-json )?([\w-]+)\)", line):
        outputs = declarations.get(cwd, (set(), set()))[1]
        if sub not in outputs:
            problem(f"{rel}: `terraform output {sub}` in {cwd}: no such output")
    line = re.sub(r"\$\([^)]*\)", "SUBST", line)
    try:
        words = shlex.split(line)
    except ValueError as err:
        problem(f"{rel}: cannot read `{line}`: {err}")
        return
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words = words[1:]
    if not words:
        return
    for word in words:
        if word.startswith("file://") and not os.path.exists(path(cwd, word[7:])):
            problem(f"{rel}: {word} (from {cwd}) does not exist")
    if words[0] == "bash" and len(words) > 1 and not os.path.exists(path(cwd, words[1])):
        problem(f"{rel}: bash {words[1]} (from {cwd}): no such script")
    if words[0] != "terraform":
        return
    if cwd not in declarations:
        problem(f"{rel}: `{line}` runs in {cwd}, which is not a Terraform root")
        return
    variables, outputs = declarations[cwd]
    if len(words) > 1 and words[1] == "output":
        names = [w for w in words[2:] if not w.startswith("-")]
        for name in names:
            if name not in outputs:
                problem(f"{rel}: `terraform output {name}` in {cwd}: no such output")
    i = 2
    while i < len(words):
        word = words[i]
        value = None
        if word in ("-var", "-var-file", "-backend-config") and i + 1 < len(words):
            value, i = words[i + 1], i + 1
            flag = word
        elif "=" in word and word.split("=", 1)[0] in ("-var", "-var-file", "-backend-config"):
            flag, value = word.split("=", 1)
        else:
            flag = None
        if flag == "-var-file" and not os.path.exists(path(cwd, value)):
            problem(f"{rel}: -var-file={value} (from {cwd}) does not exist")
        if flag == "-backend-config":
            if "=" in value:
                setting = value.split("=", 1)[0]
                if setting == "key":
                    problem(f"{rel}: passes the state key by hand; it comes from envs/<env>.s3.tfbackend")
                elif setting not in ("bucket", "region"):
                    problem(f"{rel}: -backend-config={value}: only bucket and region are the account's")
            elif not os.path.exists(path(cwd, value)):
                problem(f"{rel}: -backend-config={value} (from {cwd}) does not exist")
        if flag == "-var":
            name = value.split("=", 1)[0]
            if name not in variables:
                problem(f"{rel}: -var {name}=... in {cwd}: no such variable")
        i += 1


def main():
    check_test_buildspec()
    check_toolchain()
    version = check_install_terraform()
    check_deploy_buildspecs()
    check_placeholder_refusal()
    check_cicd()
    check_tool_locks()
    check_envs()
    check_checkov_skips()
    envs = environments()
    check_readme(envs)
    print(f"pipeline: Terraform {version} pinned; environments {envs}")
    for p in problems:
        print(f"FAIL {p}")
    print(f"pipeline: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    REPO = sys.argv[1] if len(sys.argv) > 1 else "."
    sys.exit(main())
