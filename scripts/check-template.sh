#!/usr/bin/env bash
# Offline checks of the SAM template (template.yaml) and samconfig.toml.
#
# Run from the repository root with a Python environment on PATH that has
# aws-sam-cli, cfn-lint, aws-sam-translator and cargo-lambda installed:
#
#   python3 -m venv /tmp/samvenv
#   /tmp/samvenv/bin/pip install aws-sam-cli cfn-lint aws-sam-translator cargo-lambda
#   PATH=/tmp/samvenv/bin:$PATH bash scripts/check-template.sh [--build]
#
# Nothing here talks to AWS: the region and credentials are dummies.
#   1. cfn-lint template.yaml
#   2. sam validate --lint (default and every other samconfig environment)
#   3. samconfig.toml parameter_overrides match the template's parameters
#   4. aws-sam-translator transforms the template offline; cfn-lint the result
#   5. IAM in the result: each function's role holds exactly its grants (action x resource),
#      its managed policies are the expected ones, and no statement has a wildcard
#   6. (--build only) sam build with cargo-lambda; bootstrap is an aarch64 ELF
set -euo pipefail

BUILD=0
case "${1:-}" in
  --build) BUILD=1 ;;
  "") ;;
  *) echo "usage: $0 [--build]" >&2; exit 2 ;;
esac

TEMPLATE=template.yaml
FUNCTION_ID=WebhookFunction

if [[ ! -f "$TEMPLATE" || ! -f samconfig.toml ]]; then
  echo "check-template: run from the repository root (template.yaml and samconfig.toml not found)" >&2
  exit 2
fi

for tool in cfn-lint sam python3; do
  command -v "$tool" >/dev/null || { echo "check-template: '$tool' not on PATH" >&2; exit 2; }
done
# The interpreter that has samtranslator/samcli: the one next to `sam`, else python3.
PYTHON="$(dirname "$(command -v sam)")/python3"
[[ -x "$PYTHON" ]] || PYTHON=python3
"$PYTHON" -c 'import samtranslator, samcli' 2>/dev/null \
  || { echo "check-template: $PYTHON cannot import samtranslator and samcli" >&2; exit 2; }

# Dummy, offline AWS settings: nothing below may reach AWS.
export AWS_DEFAULT_REGION=us-east-1
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=AKIAOFFLINECHECKONLY
export AWS_SECRET_ACCESS_KEY=offline-check-dummy-secret
unset AWS_SESSION_TOKEN AWS_PROFILE
export AWS_CONFIG_FILE=/dev/null
export AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_EC2_METADATA_DISABLED=true
export SAM_CLI_TELEMETRY=0

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

step() { printf '\n==> %s\n' "$*"; }
ok() { printf 'OK: %s\n' "$*"; }

step "[1/6] cfn-lint $TEMPLATE"
cfn-lint "$TEMPLATE"
ok "cfn-lint: no errors, warnings or informational findings"

step "[2/6] sam validate --lint"
sam validate --lint --template-file "$TEMPLATE"
ENVS="$("$PYTHON" -c '
try:
    import tomllib
    cfg = tomllib.load(open("samconfig.toml", "rb"))
except ImportError:  # Python < 3.11: samcli ships tomlkit
    import tomlkit
    cfg = tomlkit.parse(open("samconfig.toml").read()).unwrap()
print(" ".join(k for k, v in cfg.items() if isinstance(v, dict) and k != "default"))
')"
for env in $ENVS; do
  sam validate --lint --template-file "$TEMPLATE" --config-env "$env"
done
ok "sam validate --lint (config environments: default $ENVS)"

step "[3/6] samconfig.toml parameter_overrides against the template's parameters"
"$PYTHON" - "$TEMPLATE" <<'PY'
import re
import sys

from samcli.cli.types import CfnParameterOverridesType
from samtranslator.yaml_helper import yaml_parse

try:
    import tomllib
    cfg = tomllib.load(open("samconfig.toml", "rb"))
except ImportError:  # Python < 3.11: samcli ships tomlkit
    import tomlkit
    cfg = tomlkit.parse(open("samconfig.toml").read()).unwrap()
params = yaml_parse(open(sys.argv[1]).read())["Parameters"]
assert cfg.get("version") == 0.1, "samconfig.toml: version must be 0.1"
problems = []
for env, sections in cfg.items():
    if not isinstance(sections, dict):
        continue
    deploy = sections.get("deploy", {}).get("parameters", {})
    if not deploy.get("stack_name"):
        problems.append(f"[{env}] deploy has no stack_name")
    raw = deploy.get("parameter_overrides", [])
    values = CfnParameterOverridesType().convert(raw if isinstance(raw, list) else [raw], None, None)
    for key, value in values.items():
        spec = params.get(key)
        if spec is None:
            problems.append(f"[{env}] {key}: not a template parameter")
            continue
        if spec.get("NoEcho"):
            problems.append(f"[{env}] {key}: NoEcho parameter must not be stored in samconfig.toml")
        value = str(value)
        allowed = spec.get("AllowedValues")
        if allowed is not None and value not in [str(a) for a in allowed]:
            problems.append(f"[{env}] {key}={value}: not in AllowedValues {allowed}")
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, value):
            problems.append(f"[{env}] {key}={value}: does not match AllowedPattern {pattern}")
        if spec.get("Type") == "Number":
            try:
                number = float(value)
            except ValueError:
                problems.append(f"[{env}] {key}={value}: not a number")
                continue
            if "MinValue" in spec and number < float(spec["MinValue"]):
                problems.append(f"[{env}] {key}={value}: below MinValue {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                problems.append(f"[{env}] {key}={value}: above MaxValue {spec['MaxValue']}")
    print(f"  [{env}] stack_name={deploy.get('stack_name')} overrides={sorted(values)}")
if problems:
    sys.exit("samconfig.toml problems:\n  " + "\n  ".join(problems))
PY
ok "samconfig.toml overrides are known parameters with allowed values, and hold no secret"

step "[4/6] aws-sam-translator: transform offline, then cfn-lint the CloudFormation JSON"
TRANSFORMED="$WORK/transformed.json"
"$PYTHON" - "$TEMPLATE" "$TRANSFORMED" <<'PY'
import json
import sys

from samtranslator.public.translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class OfflinePolicyLoader(ManagedPolicyLoader):
    """Only needed for managed policies given by name; this template uses none, and IAM is never called."""

    def __init__(self):
        super().__init__(iam_client=None)

    def load(self):
        return {}


src, dst = sys.argv[1], sys.argv[2]
template = yaml_parse(open(src).read())
# `sam deploy` uploads local CodeUri folders to S3 first; the translator only accepts S3 URIs.
for logical_id, resource in template["Resources"].items():
    if resource.get("Type") == "AWS::Serverless::Function":
        props = resource.setdefault("Properties", {})
        if isinstance(props.get("CodeUri"), str) and not props["CodeUri"].startswith("s3://"):
            props["CodeUri"] = f"s3://offline-check-bucket/{logical_id}.zip"
transformed = transform(template, {}, OfflinePolicyLoader())
with open(dst, "w") as f:
    json.dump(transformed, f, indent=2, sort_keys=True)
types = sorted({r["Type"] for r in transformed["Resources"].values()})
print(f"  {len(transformed['Resources'])} resources: {', '.join(types)}")
PY
cfn-lint "$TRANSFORMED"
ok "transformed template passes cfn-lint"

step "[5/6] IAM: each role holds exactly its function's grants; no wildcards"
"$PYTHON" - "$TRANSFORMED" <<'PY'
import json
import re
import sys

template = json.load(open(sys.argv[1]))
params = template.get("Parameters", {})
resources = template["Resources"]
problems = []
WILDCARD_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:*"
BASIC_EXECUTION = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
SECRET = {"Fn::If": ["UseExistingSecret", {"Ref": "ExistingSecretArn"}, {"Ref": "WebhookSecret"}]}


def arn(logical_id):
    return {"Fn::GetAtt": [logical_id, "Arn"]}


# Per function: its role, the role's managed policies, and every (action, resource) it may use.
EXPECTED = {
    "WebhookFunction": {
        "role": "WebhookFunctionRole",
        # Logs through AWSLambdaBasicExecutionRole (SAM's generated role).
        "managed": [BASIC_EXECUTION],
        "grants": [
            ("secretsmanager:GetSecretValue", SECRET),
            ("sqs:SendMessage", arn("DeadLetterQueue")),
            ("sqs:SendMessage", arn("RefusedQueue")),
        ],
    },
    "RedeliveryFunction": {
        "role": "RedeliveryFunctionRole",
        # Explicit role: no AWSLambdaSQSQueueExecutionRole (every queue), no
        # AWSLambdaBasicExecutionRole (every log group); logs to its own group only.
        "managed": [],
        "grants": [
            ("logs:CreateLogStream", arn("RedeliveryLogGroup")),
            ("logs:PutLogEvents", arn("RedeliveryLogGroup")),
            ("secretsmanager:GetSecretValue", SECRET),
            ("sqs:ReceiveMessage", arn("DeadLetterQueue")),
            ("sqs:DeleteMessage", arn("DeadLetterQueue")),
            ("sqs:GetQueueAttributes", arn("DeadLetterQueue")),
            ("sqs:ChangeMessageVisibility", arn("DeadLetterQueue")),
            ("sqs:SendMessage", arn("RefusedQueue")),
        ],
    },
}


def key(expr):
    return json.dumps(expr, sort_keys=True)


def label(expr):
    if expr == SECRET:
        return "the webhook secret"
    if isinstance(expr, dict) and list(expr) == ["Fn::GetAtt"]:
        return ".".join(expr["Fn::GetAtt"])
    return key(expr)


def as_list(value):
    return value if isinstance(value, list) else [value]


def literals(expr, where):
    """Yield the literal strings an IAM Resource expression can produce; check references on the way."""
    if isinstance(expr, str):
        yield expr
    elif isinstance(expr, list):
        for item in expr:
            yield from literals(item, where)
    elif isinstance(expr, dict) and len(expr) == 1:
        (fn, arg), = expr.items()
        if fn == "Ref":
            if arg in params:
                pattern = params[arg].get("AllowedPattern")
                if pattern is None:
                    problems.append(f"{where}: Resource uses parameter {arg}, which has no AllowedPattern")
                elif re.fullmatch(pattern, WILDCARD_ARN) or re.fullmatch(pattern, "*"):
                    problems.append(f"{where}: parameter {arg} may contain a wildcard ({pattern})")
            elif arg not in resources:
                problems.append(f"{where}: Resource refers to unknown {arg}")
        elif fn == "Fn::If":
            for branch in arg[1:]:
                yield from literals(branch, where)
        elif fn == "Fn::Sub":
            yield from literals(arg[0] if isinstance(arg, list) else arg, where)
            if isinstance(arg, list):
                for value in arg[1].values():
                    yield from literals(value, where)
        elif fn == "Fn::Join":
            yield from literals(arg[1], where)
        elif fn == "Fn::GetAtt":
            if arg[0] not in resources:
                problems.append(f"{where}: Resource refers to unknown {arg[0]}")
        else:
            problems.append(f"{where}: unexpected {fn} in Resource")
    else:
        problems.append(f"{where}: unexpected Resource expression {expr!r}")


def statements(node, path):
    if isinstance(node, dict):
        if "Statement" in node:
            for i, st in enumerate(as_list(node["Statement"])):
                yield f"{path}.Statement[{i}]", st
        for k, value in node.items():
            yield from statements(value, f"{path}.{k}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from statements(value, f"{path}[{i}]")


# 1. Every policy statement anywhere: no wildcard, no NotAction/NotResource, and only inside
#    the expected roles' inline policies (trust policies aside).
expected_roles = {spec["role"] for spec in EXPECTED.values()}
checked = 0
for logical_id, resource in resources.items():
    rtype = resource.get("Type", "")
    if rtype.startswith("AWS::IAM::") and rtype != "AWS::IAM::Role":
        problems.append(f"{logical_id}: unexpected {rtype} (grants belong in the functions' roles)")
    if rtype == "AWS::IAM::Role" and logical_id not in expected_roles:
        problems.append(f"{logical_id}: unexpected IAM role (expected only {sorted(expected_roles)})")
    for where, st in statements(resource.get("Properties", {}), logical_id):
        if "Principal" in st and "Resource" not in st:
            continue  # trust policy (AssumeRolePolicyDocument), checked below
        checked += 1
        if not (rtype == "AWS::IAM::Role" and ".Policies[" in where):
            problems.append(f"{where}: policy statement outside a role's inline policies")
        if "NotResource" in st or "NotAction" in st:
            problems.append(f"{where}: NotResource/NotAction are not allowed")
        if st.get("Effect") != "Allow":
            problems.append(f"{where}: Effect {st.get('Effect')!r}, expected Allow")
        if "Condition" in st:
            problems.append(f"{where}: unexpected Condition")
        if "Resource" not in st:
            problems.append(f"{where}: statement without Resource")
        for literal in literals(st.get("Resource"), where):
            if "*" in literal or "?" in literal:
                problems.append(f"{where}: wildcard in Resource {literal!r}")
        for action in as_list(st.get("Action", [])):
            if not isinstance(action, str) or "*" in action or "?" in action:
                problems.append(f"{where}: wildcard or non-literal action {action!r}")

# 2. Per function: the role it runs as, the role's trust policy, managed policies and grants.
summary = []
for function_id, spec in EXPECTED.items():
    role_id = spec["role"]
    function = resources.get(function_id, {})
    if function.get("Type") != "AWS::Lambda::Function":
        problems.append(f"{function_id}: not an AWS::Lambda::Function in the translated template")
        continue
    if function["Properties"].get("Role") != arn(role_id):
        problems.append(f"{function_id}: Role is {function['Properties'].get('Role')!r}, expected {role_id}.Arn")
    role = resources.get(role_id, {})
    if role.get("Type") != "AWS::IAM::Role":
        problems.append(f"{role_id}: missing (role of {function_id})")
        continue
    props = role["Properties"]
    trust = as_list(props.get("AssumeRolePolicyDocument", {}).get("Statement", []))
    if len(trust) != 1 or trust[0].get("Effect") != "Allow" \
            or as_list(trust[0].get("Principal", {}).get("Service")) != ["lambda.amazonaws.com"] \
            or list(trust[0].get("Principal", {})) != ["Service"] \
            or as_list(trust[0].get("Action")) != ["sts:AssumeRole"] or "Condition" in trust[0]:
        problems.append(f"{role_id}: trust policy must be exactly lambda.amazonaws.com sts:AssumeRole, got {trust!r}")
    managed = sorted(map(key, props.get("ManagedPolicyArns", [])))
    if managed != sorted(map(key, spec["managed"])):
        problems.append(f"{role_id}: managed policies are {props.get('ManagedPolicyArns', [])}, expected {spec['managed']}")
    for other in ("PermissionsBoundary",):
        if other in props:
            problems.append(f"{role_id}: unexpected {other}")
    granted = {}
    for policy in props.get("Policies", []):
        for st in as_list(policy.get("PolicyDocument", {}).get("Statement", [])):
            if st.get("Effect") != "Allow":
                continue
            for action in as_list(st.get("Action", [])):
                for res in as_list(st.get("Resource", [])):
                    granted[(action, key(res))] = (action, res)
    expected = {(a, key(r)): (a, r) for a, r in spec["grants"]}
    for k in sorted(set(granted) - set(expected)):
        a, r = granted[k]
        problems.append(f"{role_id} ({function_id}) grants {a} on {label(r)}, which is not expected")
    for k in sorted(set(expected) - set(granted)):
        a, r = expected[k]
        problems.append(f"{role_id} ({function_id}) lacks {a} on {label(r)}")
    lines = {}
    for a, r in spec["grants"]:
        lines.setdefault(label(r), []).append(a)
    summary.append(f"  {function_id} -> {role_id}; managed: {[m.rsplit('/', 1)[-1] for m in spec['managed']] or 'none'}")
    summary += [f"    {', '.join(actions)} on {target}" for target, actions in lines.items()]

if problems:
    sys.exit("IAM problems:\n  " + "\n  ".join(problems))
print(f"  {checked} policy statement(s), no wildcard resources or actions")
print("\n".join(summary))
PY
ok "IAM is least-privilege: each role holds exactly its function's grants"

if [[ "$BUILD" -eq 1 ]]; then
  step "[6/6] sam build (rust-cargolambda, arm64)"
  command -v cargo-lambda >/dev/null || { echo "check-template: cargo-lambda not on PATH" >&2; exit 2; }
  BUILD_DIR=.aws-sam/build
  # No --cached: samconfig.toml builds from scratch; the .aws-sam folder stays (git-ignored).
  sam build --template-file "$TEMPLATE" --build-dir "$BUILD_DIR"
  BOOTSTRAP="$BUILD_DIR/$FUNCTION_ID/bootstrap"
  [[ -f "$BOOTSTRAP" ]] || { echo "check-template: $BOOTSTRAP was not built" >&2; exit 1; }
  "$PYTHON" - "$BOOTSTRAP" <<'PY'
import struct
import sys

path = sys.argv[1]
with open(path, "rb") as f:
    header = f.read(20)
if header[:4] != b"\x7fELF":
    sys.exit(f"{path}: not an ELF file")
if header[4] != 2:
    sys.exit(f"{path}: not a 64-bit ELF")
byte_order = "<" if header[5] == 1 else ">"
(machine,) = struct.unpack(byte_order + "H", header[18:20])
if machine != 183:  # EM_AARCH64
    sys.exit(f"{path}: e_machine is {machine}, expected 183 (aarch64)")
print(f"  {path}: ELF64, e_machine=183 (aarch64)")
PY
  if command -v file >/dev/null; then
    file "$BOOTSTRAP"
  fi
  ok "built $BOOTSTRAP for arm64"
else
  step "[6/6] sam build skipped (pass --build to build the arm64 bootstrap with cargo-lambda)"
fi

printf '\nAll template checks passed.\n'
