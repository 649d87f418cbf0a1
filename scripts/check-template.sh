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
#   4. aws-sam-translator transforms the template offline with the default parameters; cfn-lint
#      the result; with BackfillBucket empty (the default) no backfill resource or output exists
#      (all carry Condition BackfillEnabled, which is false)
#   5. IAM in the result: each role (the three functions' and the backfill state machine's) holds
#      exactly its grants (action x resource x condition), its trust policy and managed policies
#      are the expected ones; a wildcard resource only in the documented grants (objects under the
#      export prefix, the backfill function's versions, the state machine's own executions, and
#      "*" for exactly the eight CloudWatch Logs delivery actions state machine logging needs);
#      a condition only on s3:ListBucket (s3:prefix under BackfillPrefix)
#   6. redelivery wiring in the result: both queues (retention, Retain, redrive to the refused
#      queue, visibility timeout >= 6x the redelivery timeout), the SQS event source mapping,
#      the functions' queue settings, the alarms, the dashboard (valid JSON once substituted,
#      all metric names and both queues, every unconditional alarm), the outputs, and each
#      function's build (its own binary of this crate, built by cargo-lambda for arm64)
#   7. HTTP API routes in the result: exactly POST /moengage and POST /oauth/token (the OAuth
#      2.0 token route), both to the webhook function with payload 2.0, each with its own
#      invoke permission; the WebhookUrl and OAuthTokenUrl outputs
#   8. the backfill part, transformed again with BackfillBucket=moengage-exports-example and
#      BackfillPrefix=exports/acme_ and statemachine/backfill.asl.json inline (valid JSON, its
#      placeholders = the DefinitionSubstitutions, applied), so cfn-lint validates the state
#      machine definition (a deliberately broken copy must fail): all backfill resources and
#      outputs exist; the Distributed Map (STANDARD children, s3:listObjectsV2 ItemReader over
#      the input's bucket/prefix, ItemBatcher with BatchInput bucket/since/until, concurrency
#      from BackfillMaxConcurrency, ToleratedFailurePercentage 0, ResultWriter to the results
#      bucket, a lambda:invoke of BackfillFunction retried on Lambda errors and
#      BackfillIncomplete); the input check; the function (timeout, logs, environment), the
#      results bucket (SSE-S3, no public access, BucketOwnerEnforced, 30-day expiry, Retain),
#      the state machine (name, STANDARD, role, ERROR logs), the alarm, the outputs, the rate
#      arithmetic of the defaults, and events/backfill-items.json against the map's batches
#   9. (--build only) sam build with cargo-lambda: each function's bootstrap is its own
#      binary, an aarch64 ELF. SAM CLI ignores Conditions when building, so it builds
#      BackfillFunction (binary `backfill`) even when BackfillBucket is empty.
set -euo pipefail

BUILD=0
case "${1:-}" in
  --build) BUILD=1 ;;
  "") ;;
  *) echo "usage: $0 [--build]" >&2; exit 2 ;;
esac

TEMPLATE=template.yaml
# Each function and the binary of this crate it runs (BuildProperties.Binary).
# sam build builds every function, conditional ones included (BackfillFunction).
FUNCTION_BINARIES="WebhookFunction:webhook RedeliveryFunction:redeliver BackfillFunction:backfill"
FUNCTION_IDS="$(for fb in $FUNCTION_BINARIES; do printf '%s ' "${fb%%:*}"; done)"
export FUNCTION_BINARIES

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

# A small Python module the checks below share (imported from $WORK): the offline transform
# and CloudFormation condition evaluation.
cat > "$WORK/checklib.py" <<'PY'
"""Helpers shared by the template checks: offline SAM transform, condition evaluation."""
import copy
import logging

from samtranslator.public.translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform


# The translator's metrics are never published offline; it would warn so on exit.
logging.getLogger("samtranslator.metrics").setLevel(logging.ERROR)


class OfflinePolicyLoader(ManagedPolicyLoader):
    """Only needed for managed policies given by name; this template uses none, and IAM is never called."""

    def __init__(self):
        super().__init__(iam_client=None)

    def load(self):
        return {}


def transform_offline(template, parameter_values=None):
    """The SAM transform, offline. `sam deploy` uploads local CodeUri folders and DefinitionUri
    files to S3 first; the translator only accepts S3 URIs, so local paths become fake ones."""
    template = copy.deepcopy(template)
    for logical_id, resource in template["Resources"].items():
        props = resource.setdefault("Properties", {})
        field = {"AWS::Serverless::Function": "CodeUri",
                 "AWS::Serverless::StateMachine": "DefinitionUri"}.get(resource.get("Type"))
        if field and isinstance(props.get(field), str) and not props[field].startswith("s3://"):
            props[field] = f"s3://offline-check-bucket/{logical_id}/{props[field]}"
    return transform(template, parameter_values or {}, OfflinePolicyLoader())


def parameter_values(template, overrides=None):
    """Each parameter's value: its Default, or the override; as CloudFormation sees it, a string."""
    values = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
    values.update(overrides or {})
    return values


def conditions(template, values):
    """Evaluate every condition of the template for these parameter values."""
    specs = template.get("Conditions", {})
    done = {}

    def value(expr):
        if isinstance(expr, (str, int, float)):
            return str(expr)
        if isinstance(expr, dict) and list(expr) == ["Ref"]:
            name = expr["Ref"]
            if name in values:
                return values[name]
            if name.startswith("AWS::"):
                return f"<{name}>"
        raise ValueError(f"cannot evaluate {expr!r} in a condition")

    def evaluate(expr):
        (fn, arg), = expr.items()
        if fn == "Fn::Equals":
            return value(arg[0]) == value(arg[1])
        if fn == "Fn::Not":
            return not evaluate(arg[0])
        if fn == "Fn::Or":
            return any(evaluate(a) for a in arg)
        if fn == "Fn::And":
            return all(evaluate(a) for a in arg)
        if fn == "Condition":
            return condition(arg)
        raise ValueError(f"cannot evaluate {fn} in a condition")

    def condition(name):
        if name not in done:
            done[name] = evaluate(specs[name])
        return done[name]

    for name in specs:
        condition(name)
    return done


def created(template, values):
    """Logical ids of the resources and outputs CloudFormation would create for these values."""
    conds = conditions(template, values)
    resources = {k for k, r in template["Resources"].items() if conds.get(r.get("Condition"), True)}
    outputs = {k for k, o in template.get("Outputs", {}).items() if conds.get(o.get("Condition"), True)}
    return resources, outputs

# --- Shared by the checks of the translated template ---------------------------------------------
SECRET = {"Fn::If": ["UseExistingSecret", {"Ref": "ExistingSecretArn"}, {"Ref": "WebhookSecret"}]}
ALARM_ACTIONS = {"Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]}


def ref(x):
    return {"Ref": x}


def getatt(x, attr):
    return {"Fn::GetAtt": [x, attr]}


def sub(text):
    return {"Fn::Sub": text}


# The problems a check found (each check is a process of its own): `expect` adds to them.
problems = []


def expect(cond, message):
    if not cond:
        problems.append(message)
    return cond


def props_of(resources):
    """props(logical_id, rtype): the resource's Properties; {} and a problem when it is missing
    or of another type."""
    def props(logical_id, rtype):
        resource = resources.get(logical_id)
        if resource is None or resource.get("Type") != rtype:
            problems.append(f"{logical_id}: missing, or not {rtype}")
            return {}
        return resource.get("Properties", {})
    return props
PY
export PYTHONPATH="$WORK${PYTHONPATH:+:$PYTHONPATH}"

step "[1/9] cfn-lint $TEMPLATE"
cfn-lint "$TEMPLATE"
ok "cfn-lint: no errors, warnings or informational findings"

step "[2/9] sam validate --lint"
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

step "[3/9] samconfig.toml parameter_overrides against the template's parameters"
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

step "[4/9] aws-sam-translator: transform offline (default parameters), then cfn-lint the CloudFormation JSON"
TRANSFORMED="$WORK/transformed.json"
"$PYTHON" - "$TEMPLATE" "$TRANSFORMED" <<'PY'
import json
import sys

from checklib import created, parameter_values, transform_offline
from samtranslator.yaml_helper import yaml_parse

src, dst = sys.argv[1], sys.argv[2]
transformed = transform_offline(yaml_parse(open(src).read()))
with open(dst, "w") as f:
    json.dump(transformed, f, indent=2, sort_keys=True)
resources = transformed["Resources"]
types = sorted({r["Type"] for r in resources.values()})
print(f"  {len(resources)} resources: {', '.join(types)}")

# With the default parameters (BackfillBucket empty) the backfill part does not exist: every
# resource and output of it (SAM's generated ones too) is conditional on BackfillEnabled,
# which is false.
problems = []
values = parameter_values(transformed)
made, outputs = created(transformed, values)
backfill = sorted(k for k, r in resources.items()
                  if k.startswith("Backfill") or r["Type"] in ("AWS::StepFunctions::StateMachine", "AWS::S3::Bucket"))
if not backfill:
    problems.append("no backfill resources in the transformed template")
for k in backfill:
    if resources[k].get("Condition") != "BackfillEnabled":
        problems.append(f"{k}: Condition is {resources[k].get('Condition')!r}, expected BackfillEnabled")
for k in sorted(made & set(backfill)):
    problems.append(f"{k}: created with the default parameters (BackfillBucket={values.get('BackfillBucket')!r})")
for k in sorted(o for o in outputs if o.startswith("Backfill")):
    problems.append(f"output {k}: created with the default parameters")
if values.get("BackfillBucket") != "":
    problems.append(f"parameter BackfillBucket defaults to {values.get('BackfillBucket')!r}, expected empty (backfill off)")
if problems:
    sys.exit("backfill-off problems:\n  " + "\n  ".join(problems))
print(f"  default parameters: {len(made)} resources created; the {len(backfill)} backfill resources "
      f"(Condition BackfillEnabled, false while BackfillBucket is empty) are not")
PY
cfn-lint "$TRANSFORMED"
ok "transformed template passes cfn-lint; no backfill resource exists with the default parameters"

step "[5/9] IAM: each role holds exactly its grants; wildcards only where documented"
"$PYTHON" - "$TRANSFORMED" <<'PY'
import json
import re
import sys

from checklib import SECRET, sub

template = json.load(open(sys.argv[1]))
params = template.get("Parameters", {})
resources = template["Resources"]
problems = []
WILDCARD_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:*"
BASIC_EXECUTION = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


def arn(logical_id):
    return {"Fn::GetAtt": [logical_id, "Arn"]}


STATES = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}"
EXPORT_BUCKET = sub("arn:${AWS::Partition}:s3:::${BackfillBucket}")
EXPORT_OBJECTS = sub("arn:${AWS::Partition}:s3:::${BackfillBucket}/${BackfillPrefix}*")
UNDER_PREFIX = {"StringLike": {"s3:prefix": sub("${BackfillPrefix}*")}}
RESULTS = sub("${BackfillResultsBucket.Arn}/executions/*")
STATE_MACHINE = sub(STATES + ":stateMachine:${AWS::StackName}-backfill")
EXECUTIONS = sub(STATES + ":execution:${AWS::StackName}-backfill:*")
CHILD_EXECUTIONS = sub(STATES + ":execution:${AWS::StackName}-backfill/Backfill:*")
FUNCTION_VERSIONS = sub("${BackfillFunction.Arn}:*")
# CloudWatch Logs vended-log delivery (state machine logging): these actions take no resource
# ARN, and AWS documents them with Resource "*". The only "*" resource allowed.
LOG_DELIVERY = ["logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery",
                "logs:DeleteLogDelivery", "logs:ListLogDeliveries", "logs:PutResourcePolicy",
                "logs:DescribeResourcePolicies", "logs:DescribeLogGroups"]
LAMBDA_TRUST = {"Service": "lambda.amazonaws.com"}, None
STATES_TRUST = {"Service": "states.amazonaws.com"}, {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}

# Per role: who runs as it, its trust policy, its managed policies, and every
# (action, resource, condition) it may use.
EXPECTED = {
    "WebhookFunctionRole": {
        "used_by": ("WebhookFunction", "AWS::Lambda::Function", "Role"),
        "trust": LAMBDA_TRUST,
        # Logs through AWSLambdaBasicExecutionRole (SAM's generated role).
        "managed": [BASIC_EXECUTION],
        "grants": [
            ("secretsmanager:GetSecretValue", SECRET),
            ("sqs:SendMessage", arn("DeadLetterQueue")),
            ("sqs:SendMessage", arn("RefusedQueue")),
        ],
    },
    "RedeliveryFunctionRole": {
        "used_by": ("RedeliveryFunction", "AWS::Lambda::Function", "Role"),
        "trust": LAMBDA_TRUST,
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
    "BackfillFunctionRole": {
        "used_by": ("BackfillFunction", "AWS::Lambda::Function", "Role"),
        "trust": LAMBDA_TRUST,
        "managed": [],
        "grants": [
            ("logs:CreateLogStream", arn("BackfillLogGroup")),
            ("logs:PutLogEvents", arn("BackfillLogGroup")),
            ("secretsmanager:GetSecretValue", SECRET),
            ("sqs:SendMessage", arn("DeadLetterQueue")),
            ("sqs:SendMessage", arn("RefusedQueue")),
            ("s3:ListBucket", EXPORT_BUCKET, UNDER_PREFIX),
            ("s3:GetObject", EXPORT_OBJECTS),
        ],
    },
    "BackfillStateMachineRole": {
        "used_by": ("BackfillStateMachine", "AWS::StepFunctions::StateMachine", "RoleArn"),
        "trust": STATES_TRUST,
        "managed": [],
        "grants": [
            ("lambda:InvokeFunction", arn("BackfillFunction")),
            ("lambda:InvokeFunction", FUNCTION_VERSIONS),
            ("s3:ListBucket", EXPORT_BUCKET, UNDER_PREFIX),
            ("s3:PutObject", RESULTS),
            ("s3:GetObject", RESULTS),
            ("s3:ListMultipartUploadParts", RESULTS),
            ("s3:AbortMultipartUpload", RESULTS),
            ("states:StartExecution", STATE_MACHINE),
            ("states:DescribeExecution", EXECUTIONS),
            ("states:StopExecution", EXECUTIONS),
            ("states:DescribeExecution", CHILD_EXECUTIONS),
            ("states:StopExecution", CHILD_EXECUTIONS),
            ("states:RedriveExecution", CHILD_EXECUTIONS),
        ] + [(action, "*") for action in LOG_DELIVERY],
    },
}


def key(expr):
    return json.dumps(expr, sort_keys=True)


# The only grants whose Resource may hold a wildcard, each for a reason.
WILDCARD_OK = {
    ("s3:GetObject", key(EXPORT_OBJECTS)): "the objects under the export prefix",
    ("lambda:InvokeFunction", key(FUNCTION_VERSIONS)): "the backfill function's versions and aliases",
    **{(a, key(RESULTS)): "the result files under executions/" for a in
       ("s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload")},
    ("states:DescribeExecution", key(EXECUTIONS)): "this state machine's executions",
    ("states:StopExecution", key(EXECUTIONS)): "this state machine's executions",
    **{(a, key(CHILD_EXECUTIONS)): "this state machine's Map Run child executions" for a in
       ("states:DescribeExecution", "states:StopExecution", "states:RedriveExecution")},
    **{(a, key("*")): "CloudWatch Logs delivery (no resource ARN)" for a in LOG_DELIVERY},
}
# The only condition a statement may carry: s3:ListBucket under the export prefix.
CONDITION_OK = {("s3:ListBucket", key(UNDER_PREFIX))}
PARAM_REF = re.compile(r"\$\{([A-Za-z0-9.:]+)\}")


def label(expr):
    if expr == SECRET:
        return "the webhook secret"
    if isinstance(expr, dict) and list(expr) == ["Fn::GetAtt"]:
        return ".".join(expr["Fn::GetAtt"])
    if isinstance(expr, dict) and list(expr) == ["Fn::Sub"] and isinstance(expr["Fn::Sub"], str):
        return expr["Fn::Sub"]
    return key(expr)


def as_list(value):
    return value if isinstance(value, list) else [value]


def check_parameter(name, where):
    if name in params:
        pattern = params[name].get("AllowedPattern")
        if pattern is None:
            problems.append(f"{where}: Resource uses parameter {name}, which has no AllowedPattern")
        elif any(re.fullmatch(pattern, probe) for probe in (WILDCARD_ARN, "*", "?", "abc*", "abc?", "a/b*")):
            problems.append(f"{where}: parameter {name} may contain a wildcard ({pattern})")
    elif not name.startswith("AWS::") and name.split(".")[0] not in resources:
        problems.append(f"{where}: Resource refers to unknown {name}")


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
            check_parameter(arg, where)
        elif fn == "Fn::If":
            for branch in arg[1:]:
                yield from literals(branch, where)
        elif fn == "Fn::Sub":
            text = arg[0] if isinstance(arg, list) else arg
            names = dict(arg[1]) if isinstance(arg, list) else {}
            for name in PARAM_REF.findall(text):
                if name not in names:
                    check_parameter(name, where)
            yield text
            for value in names.values():
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


# 1. Every policy statement anywhere: wildcards only in the grants of WILDCARD_OK, conditions only
#    in CONDITION_OK, no NotAction/NotResource, and only inside the expected roles' inline
#    policies (trust policies aside).
checked = 0
wildcards = set()
for logical_id, resource in resources.items():
    rtype = resource.get("Type", "")
    if rtype.startswith("AWS::IAM::") and rtype != "AWS::IAM::Role":
        problems.append(f"{logical_id}: unexpected {rtype} (grants belong in the roles)")
    if rtype == "AWS::IAM::Role" and logical_id not in EXPECTED:
        problems.append(f"{logical_id}: unexpected IAM role (expected only {sorted(EXPECTED)})")
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
        if "Resource" not in st:
            problems.append(f"{where}: statement without Resource")
        actions = as_list(st.get("Action", []))
        for action in actions:
            if not isinstance(action, str) or "*" in action or "?" in action:
                problems.append(f"{where}: wildcard or non-literal action {action!r}")
        if "Condition" in st:
            for action in actions:
                if (action, key(st["Condition"])) not in CONDITION_OK:
                    problems.append(f"{where}: unexpected Condition {st['Condition']!r} on {action}")
        for res in as_list(st.get("Resource", [])):
            if any("*" in lit or "?" in lit for lit in literals(res, where)):
                for action in actions:
                    if (action, key(res)) in WILDCARD_OK:
                        wildcards.add((action, key(res)))
                    else:
                        problems.append(f"{where}: wildcard in Resource {label(res)!r} for {action}")

# 2. Per role: who uses it, its trust policy, managed policies and grants (exactly).
summary = []
for role_id, spec in EXPECTED.items():
    user_id, user_type, user_field = spec["used_by"]
    user = resources.get(user_id, {})
    if user.get("Type") != user_type:
        problems.append(f"{user_id}: not an {user_type} in the translated template")
        continue
    if user["Properties"].get(user_field) != arn(role_id):
        problems.append(f"{user_id}: {user_field} is {user['Properties'].get(user_field)!r}, expected {role_id}.Arn")
    role = resources.get(role_id, {})
    if role.get("Type") != "AWS::IAM::Role":
        problems.append(f"{role_id}: missing (role of {user_id})")
        continue
    if role.get("Condition") != user.get("Condition"):
        problems.append(f"{role_id}: Condition {role.get('Condition')!r} differs from {user_id}'s {user.get('Condition')!r}")
    props = role["Properties"]
    principal, condition = spec["trust"]
    trust = as_list(props.get("AssumeRolePolicyDocument", {}).get("Statement", []))
    if len(trust) != 1 or trust[0].get("Effect") != "Allow" \
            or {k: as_list(v) for k, v in trust[0].get("Principal", {}).items()} != {k: [v] for k, v in principal.items()} \
            or as_list(trust[0].get("Action")) != ["sts:AssumeRole"] or trust[0].get("Condition") != condition:
        problems.append(f"{role_id}: trust policy must be exactly {principal} sts:AssumeRole"
                        f"{' with ' + key(condition) if condition else ''}, got {trust!r}")
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
            cond = st.get("Condition")
            for action in as_list(st.get("Action", [])):
                for res in as_list(st.get("Resource", [])):
                    granted[(action, key(res), key(cond))] = (action, res, cond)
    expected = {}
    for grant in spec["grants"]:
        action, res, cond = (grant + (None,))[:3]
        expected[(action, key(res), key(cond))] = (action, res, cond)
    for k in sorted(set(granted) - set(expected)):
        a, r, c = granted[k]
        problems.append(f"{role_id} ({user_id}) grants {a} on {label(r)}{' if ' + key(c) if c else ''}, which is not expected")
    for k in sorted(set(expected) - set(granted)):
        a, r, c = expected[k]
        problems.append(f"{role_id} ({user_id}) lacks {a} on {label(r)}{' if ' + key(c) if c else ''}")
    lines = {}
    for grant in spec["grants"]:
        target = label(grant[1]) + (" (s3:prefix under BackfillPrefix)" if len(grant) > 2 else "")
        lines.setdefault(target, []).append(grant[0])
    summary.append(f"  {user_id} -> {role_id}; trust {principal['Service']}; "
                   f"managed: {[m.rsplit('/', 1)[-1] for m in spec['managed']] or 'none'}"
                   f"{'; only with ' + user['Condition'] if user.get('Condition') else ''}")
    summary += [f"    {', '.join(actions)} on {target}" for target, actions in lines.items()]
unused = sorted(set(WILDCARD_OK) - wildcards)
if unused:
    problems.append(f"documented wildcard grants not found (stale list?): {unused}")

if problems:
    sys.exit("IAM problems:\n  " + "\n  ".join(problems))
print(f"  {checked} policy statement(s); wildcard resources only in the {len(wildcards)} documented grants "
      "(objects under a prefix, function versions, this state machine's executions, log delivery on \"*\")")
print("\n".join(summary))
PY
ok "IAM is least-privilege: each role holds exactly its grants"

step "[6/9] Redelivery: queues, event source mapping, alarms, dashboard, outputs, builds"
"$PYTHON" - "$TEMPLATE" "$TRANSFORMED" <<'PY'
import json
import re
import sys

from checklib import ALARM_ACTIONS, SECRET, expect, getatt, problems, props_of, ref
from samtranslator.yaml_helper import yaml_parse

source = yaml_parse(open(sys.argv[1]).read())
template = json.load(open(sys.argv[2]))
params = template.get("Parameters", {})
resources = template["Resources"]
props = props_of(resources)
outputs = template.get("Outputs", {})
notes = []

METRICS = ["Received", "Forwarded", "Rejected", "Retried", "Parked", "Refused", "Redelivered",
           "Filtered", "Identifies", "MappingOptionsInvalid", "SegmentLatencyMs"]


def number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# --- Queues -------------------------------------------------------------------------------
parked = props("DeadLetterQueue", "AWS::SQS::Queue")
refused = props("RefusedQueue", "AWS::SQS::Queue")
for qid, q, suffix in (("DeadLetterQueue", parked, "parked"), ("RefusedQueue", refused, "refused")):
    if not q:
        continue
    expect(q.get("QueueName") == {"Fn::Sub": "${AWS::StackName}-" + suffix},
           f"{qid}: QueueName is {q.get('QueueName')!r}, expected ${{AWS::StackName}}-{suffix}")
    expect(number(q.get("MessageRetentionPeriod")) == 1209600,
           f"{qid}: MessageRetentionPeriod is {q.get('MessageRetentionPeriod')!r}, expected 1209600 (14 days)")
    expect(q.get("SqsManagedSseEnabled") in (True, "true"), f"{qid}: SqsManagedSseEnabled is not true")
    for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
        expect(resources[qid].get(policy) == "Retain",
               f"{qid}: {policy} is {resources[qid].get(policy)!r}, expected Retain (it may hold undelivered events)")

redelivery = props("RedeliveryFunction", "AWS::Lambda::Function")
webhook = props("WebhookFunction", "AWS::Lambda::Function")
timeout = number(redelivery.get("Timeout"))
expect(timeout is not None, f"RedeliveryFunction: Timeout {redelivery.get('Timeout')!r} is not a literal number")
if parked:
    redrive = parked.get("RedrivePolicy") or {}
    expect(redrive.get("deadLetterTargetArn") == getatt("RefusedQueue", "Arn"),
           f"DeadLetterQueue: RedrivePolicy.deadLetterTargetArn is {redrive.get('deadLetterTargetArn')!r}, expected RefusedQueue.Arn")
    receives = number(redrive.get("maxReceiveCount"))
    expect(receives is not None and receives >= 100,
           f"DeadLetterQueue: RedrivePolicy.maxReceiveCount is {redrive.get('maxReceiveCount')!r}, expected >= 100 "
           "(a backstop only; the function moves old messages itself)")
    visibility = number(parked.get("VisibilityTimeout"))
    if timeout is not None:
        expect(visibility is not None and visibility >= 6 * timeout,
               f"DeadLetterQueue: VisibilityTimeout is {parked.get('VisibilityTimeout')!r}, expected >= 6 x "
               f"RedeliveryFunction Timeout ({timeout:g} s) = {6 * timeout:g}")
if refused:
    allow = refused.get("RedriveAllowPolicy") or {}
    parked_arn = {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${AWS::StackName}-parked"}
    expect(allow.get("redrivePermission") == "byQueue" and allow.get("sourceQueueArns") == [parked_arn],
           f"RefusedQueue: RedriveAllowPolicy is {allow!r}, expected byQueue with only the parked queue's ARN")

# --- Event source mapping -----------------------------------------------------------------
mappings = {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::Lambda::EventSourceMapping"}
on_parked = {k: m for k, m in mappings.items() if m.get("EventSourceArn") == getatt("DeadLetterQueue", "Arn")}
expect(len(mappings) == 1 and len(on_parked) == 1,
       f"expected exactly one event source mapping, on DeadLetterQueue; found {sorted(mappings)} ({sorted(on_parked)} on the parked queue)")
for mid, m in on_parked.items():
    expect(m.get("FunctionName") == ref("RedeliveryFunction"),
           f"{mid}: FunctionName is {m.get('FunctionName')!r}, expected RedeliveryFunction")
    expect(m.get("FunctionResponseTypes") == ["ReportBatchItemFailures"],
           f"{mid}: FunctionResponseTypes is {m.get('FunctionResponseTypes')!r}, expected [ReportBatchItemFailures]")
    expect(m.get("ScalingConfig") == {"MaximumConcurrency": ref("RedeliveryConcurrency")},
           f"{mid}: ScalingConfig is {m.get('ScalingConfig')!r}, expected MaximumConcurrency: !Ref RedeliveryConcurrency")
    expect(number(m.get("BatchSize")) == 100, f"{mid}: BatchSize is {m.get('BatchSize')!r}, expected 100")
    window = number(m.get("MaximumBatchingWindowInSeconds"))
    expect(window is not None and 1 <= window <= 300,
           f"{mid}: MaximumBatchingWindowInSeconds is {m.get('MaximumBatchingWindowInSeconds')!r}; "
           "a BatchSize over 10 needs 1..300")
    expect(m.get("Enabled", True) in (True, "true"), f"{mid}: Enabled is {m.get('Enabled')!r}")
concurrency = params.get("RedeliveryConcurrency", {})
expect(concurrency.get("Type") == "Number" and number(concurrency.get("Default")) == 2
       and number(concurrency.get("MinValue")) == 2 and (number(concurrency.get("MaxValue")) or 0) <= 1000,
       "parameter RedeliveryConcurrency is %r, expected Number, Default 2, MinValue 2 (AWS's minimum), MaxValue <= 1000"
       % {k: concurrency.get(k) for k in ("Type", "Default", "MinValue", "MaxValue")})

# --- The functions' queue settings and logs --------------------------------------------------
env_w = webhook.get("Environment", {}).get("Variables", {})
env_r = redelivery.get("Environment", {}).get("Variables", {})
for name, expected in (("DEAD_LETTER_QUEUE_URL", ref("DeadLetterQueue")), ("REFUSED_QUEUE_URL", ref("RefusedQueue"))):
    expect(env_w.get(name) == expected, f"WebhookFunction: {name} is {env_w.get(name)!r}, expected {expected!r}")
expected_env = {
    "SECRET_ID": SECRET,
    "SECRET_TTL_SECONDS": ref("SecretTtlSeconds"),
    "RUST_LOG": ref("RustLog"),
    "DEAD_LETTER_QUEUE_URL": ref("DeadLetterQueue"),
    "REFUSED_QUEUE_URL": ref("RefusedQueue"),
    "REDELIVERY_MAX_AGE_HOURS": "168",
}
for name in sorted(set(env_r) | set(expected_env)):
    expect(env_r.get(name) == expected_env.get(name),
           f"RedeliveryFunction: environment {name} is {env_r.get(name)!r}, expected {expected_env.get(name)!r}")
max_age_h = number(env_r.get("REDELIVERY_MAX_AGE_HOURS"))
if parked and max_age_h is not None:
    expect(max_age_h * 3600 < (number(parked.get("MessageRetentionPeriod")) or 0),
           "REDELIVERY_MAX_AGE_HOURS must be below the parked queue's retention, or messages expire before they move")
for fid, fprops, group, name in (
    ("WebhookFunction", webhook, "FunctionLogGroup", "/aws/lambda/${AWS::StackName}-webhook"),
    ("RedeliveryFunction", redelivery, "RedeliveryLogGroup", "/aws/lambda/${AWS::StackName}-redelivery"),
):
    logging = fprops.get("LoggingConfig", {})
    expect(logging.get("LogFormat") == "JSON" and logging.get("LogGroup") == ref(group),
           f"{fid}: LoggingConfig is {logging!r}, expected JSON into {group}")
    expect(props(group, "AWS::Logs::LogGroup").get("LogGroupName") == {"Fn::Sub": name},
           f"{group}: LogGroupName is not {name}")

# --- Alarms -------------------------------------------------------------------------------
alarms = {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def single(namespace, metric, dim_name, dim_value):
    return {k: a for k, a in alarms.items()
            if a.get("Namespace") == namespace and a.get("MetricName") == metric
            and a.get("Dimensions") == [{"Name": dim_name, "Value": dim_value}]}


def want_alarm(what, found, threshold, operator):
    ok = {k: a for k, a in found.items()
          if number(a.get("Threshold")) == threshold and a.get("ComparisonOperator") == operator}
    if expect(ok, f"no alarm: {what} (threshold {threshold:g}, {operator}); candidates: {sorted(found)}"):
        notes.append(f"{what}: {', '.join(sorted(ok))}")


want_alarm("refused queue depth >= 1",
           single("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", getatt("RefusedQueue", "QueueName")),
           1, "GreaterThanOrEqualToThreshold")
want_alarm("parked queue oldest message > 3600 s",
           single("AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", getatt("DeadLetterQueue", "QueueName")),
           3600, "GreaterThanThreshold")
want_alarm("mapping options invalid >= 1",
           single("MoEngageSegment", "MappingOptionsInvalid", "FunctionName", ref("WebhookFunction")),
           1, "GreaterThanOrEqualToThreshold")
want_alarm("redelivery function errors >= 1",
           single("AWS/Lambda", "Errors", "FunctionName", ref("RedeliveryFunction")), 1, "GreaterThanOrEqualToThreshold")
depth = single("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", getatt("DeadLetterQueue", "QueueName"))
expect(not depth, f"{sorted(depth)}: alarm on the parked queue's depth; a parked event is normal and redelivered by itself")
backlog = [k for k, a in alarms.items()
           if any(m.get("MetricStat", {}).get("Metric", {}).get("Dimensions") == [{"Name": "QueueName", "Value": getatt("DeadLetterQueue", "QueueName")}]
                  and m["MetricStat"]["Metric"].get("MetricName") == "ApproximateNumberOfMessagesNotVisible"
                  for m in a.get("Metrics", []))
           and (number(a.get("EvaluationPeriods")) or 0) * 300 >= 3600]
if expect(backlog, "no alarm: parked queue not empty (waiting + in backoff) for an hour"):
    notes.append(f"parked queue not empty for an hour: {', '.join(backlog)}")
for k, a in alarms.items():
    expect(a.get("AlarmActions") == ALARM_ACTIONS and a.get("OKActions") == ALARM_ACTIONS,
           f"{k}: AlarmActions/OKActions must be !If [HasAlarmEmail, [!Ref AlarmTopic], !Ref AWS::NoValue]")

# --- Dashboard ----------------------------------------------------------------------------
dashboards = {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::CloudWatch::Dashboard"}
if expect(len(dashboards) == 1, f"expected one AWS::CloudWatch::Dashboard, found {sorted(dashboards)}"):
    (dash_id, dash), = dashboards.items()
    expect(dash.get("DashboardName") == {"Fn::Sub": "${AWS::StackName}"},
           f"{dash_id}: DashboardName is {dash.get('DashboardName')!r}, expected ${{AWS::StackName}}")
    body = dash.get("DashboardBody")
    if expect(isinstance(body, dict) and isinstance(body.get("Fn::Sub"), str),
              f"{dash_id}: DashboardBody must be !Sub with a JSON string"):
        text = body["Fn::Sub"]
        variables = set(re.findall(r"\$\{([^!}][^}]*)\}", text))
        for var in sorted(variables):
            base, _, attr = var.partition(".")
            known = var.startswith("AWS::") or (not attr and var in params) or base in resources
            expect(known, f"{dash_id}: ${{{var}}} is neither a pseudo parameter, a parameter nor a resource")
        # Every ${X} becomes "SUB(X)", every ${!X} the literal ${X}: what CloudFormation would do.
        substituted = re.sub(r"\$\{!", "${", re.sub(r"\$\{([^!}][^}]*)\}", r"SUB(\1)", text))
        try:
            parsed = json.loads(substituted)
        except json.JSONDecodeError as e:
            parsed = None
            line = substituted.splitlines()[e.lineno - 1] if e.lineno <= len(substituted.splitlines()) else ""
            problems.append(f"{dash_id}: DashboardBody is not valid JSON after substitution: {e}\n      {line.strip()}")
        if parsed is not None:
            widgets = parsed.get("widgets") if isinstance(parsed, dict) else None
            expect(isinstance(widgets, list) and widgets, f"{dash_id}: no widgets")
            series = []  # (namespace, metric, {dimension: value}, options)
            alarm_arns = set()
            for i, w in enumerate(widgets or []):
                geometry = [w.get(k) for k in ("x", "y", "width", "height")]
                expect(all(isinstance(v, int) for v in geometry) and geometry[0] + geometry[2] <= 24,
                       f"{dash_id}: widget {i} has a bad position/size {geometry}")
                p = w.get("properties", {})
                if w.get("type") == "metric":
                    expect(p.get("region") == "SUB(AWS::Region)", f"{dash_id}: widget {i} region is not ${{AWS::Region}}")
                    previous = []
                    for row in p.get("metrics", []):
                        options = row[-1] if row and isinstance(row[-1], dict) else {}
                        fields = row[:-1] if options else row
                        fields = [previous[j] if f == "." and j < len(previous) else f for j, f in enumerate(fields)]
                        previous = fields
                        if len(fields) < 2 or len(fields) % 2:
                            problems.append(f"{dash_id}: widget {i} has a malformed metric row {row!r}")
                            continue
                        series.append((fields[0], fields[1], dict(zip(fields[2::2], fields[3::2])), options))
                elif w.get("type") == "alarm":
                    alarm_arns.update(p.get("alarms", []))

            def has(namespace, metric, **dims):
                return any(s[0] == namespace and s[1] == metric and s[2] == dims for s in series)

            emitted = {s[1] for s in series if s[0] == "MoEngageSegment"}
            missing = [m for m in METRICS if m not in emitted]
            expect(not missing, f"{dash_id}: MoEngageSegment metrics missing: {missing}")
            for fid in ("WebhookFunction", "RedeliveryFunction"):
                fn = f"SUB({fid})"
                expect(has("MoEngageSegment", "SegmentLatencyMs", FunctionName=fn), f"{dash_id}: no SegmentLatencyMs of {fid}")
                for metric in ("Errors", "Throttles", "Duration"):
                    expect(has("AWS/Lambda", metric, FunctionName=fn), f"{dash_id}: no AWS/Lambda {metric} of {fid}")
            for metric in ("Received", "Forwarded", "Parked", "Refused", "Rejected"):
                expect(has("MoEngageSegment", metric, FunctionName="SUB(WebhookFunction)"), f"{dash_id}: no {metric} of WebhookFunction")
            for metric in ("Received", "Redelivered", "Refused"):
                expect(has("MoEngageSegment", metric, FunctionName="SUB(RedeliveryFunction)"), f"{dash_id}: no {metric} of RedeliveryFunction")
            for qid in ("DeadLetterQueue", "RefusedQueue"):
                expect(has("AWS/SQS", "ApproximateNumberOfMessagesVisible", QueueName=f"SUB({qid}.QueueName)"),
                       f"{dash_id}: no ApproximateNumberOfMessagesVisible of {qid}")
            expect(has("AWS/SQS", "ApproximateAgeOfOldestMessage", QueueName="SUB(DeadLetterQueue.QueueName)"),
                   f"{dash_id}: no ApproximateAgeOfOldestMessage of DeadLetterQueue")
            for metric in ("4xx", "5xx"):
                expect(has("AWS/ApiGateway", metric, ApiId="SUB(HttpApi)"), f"{dash_id}: no AWS/ApiGateway {metric} of HttpApi")
            unknown_fn = {s[2].get("FunctionName") for s in series if "FunctionName" in s[2]} - {"SUB(WebhookFunction)", "SUB(RedeliveryFunction)"}
            expect(not unknown_fn, f"{dash_id}: FunctionName dimensions {sorted(unknown_fn)} are neither function")
            # Every unconditional alarm; a conditional one (BackfillFailedAlarm) cannot be on the
            # unconditional dashboard: it does not exist while its condition is false.
            missing_alarms = sorted(k for k in alarms if f"SUB({k}.Arn)" not in alarm_arns and "Condition" not in resources[k])
            conditional = sorted(k for k in alarms if f"SUB({k}.Arn)" in alarm_arns and "Condition" in resources[k])
            expect(not conditional, f"{dash_id}: alarm widget lists conditional alarms {conditional}")
            expect(not missing_alarms, f"{dash_id}: alarm widget lacks {missing_alarms}")
            notes.append(f"dashboard {dash_id}: {len(widgets)} widgets, {len(series)} metric series, "
                         f"{len(alarm_arns)} alarms; valid JSON once substituted")

# --- Outputs ------------------------------------------------------------------------------
def sub_text(value):
    if isinstance(value, dict) and "Fn::Sub" in value:
        arg = value["Fn::Sub"]
        return arg[0] if isinstance(arg, list) else arg
    return None


for name, value in (("DeadLetterQueueUrl", ref("DeadLetterQueue")), ("RefusedQueueUrl", ref("RefusedQueue")),
                    ("RedeliveryFunctionName", ref("RedeliveryFunction"))):
    expect(outputs.get(name, {}).get("Value") == value, f"output {name} is missing or not {value!r}")
dash_url = sub_text(outputs.get("DashboardUrl", {}).get("Value")) or ""
expect("#dashboards:name=${Dashboard}" in dash_url and dash_url.startswith("https://"),
       f"output DashboardUrl is missing or does not open ${{Dashboard}}: {dash_url!r}")
replay = sub_text(outputs.get("ReplayCommand", {}).get("Value")) or ""
expect(replay.endswith("replay --queue ${RefusedQueue}"), f"output ReplayCommand does not replay the refused queue: {replay!r}")

# --- Each function's build (source template, Globals applied) -------------------------------
# Every function is a binary of this crate (CodeUri "."), built by cargo-lambda for arm64 on
# provided.al2023, named by BuildProperties.Binary.
import os
BUILD = {"CodeUri": ".", "Handler": "bootstrap", "Runtime": "provided.al2023", "Architectures": ["arm64"]}
globals_fn = source.get("Globals", {}).get("Function", {})
for pair in os.environ["FUNCTION_BINARIES"].split():
    fid, binary = pair.split(":")
    res = source["Resources"].get(fid, {})
    effective = {k: res.get("Properties", {}).get(k, globals_fn.get(k)) for k in BUILD}
    meta = res.get("Metadata") or {}
    expect(effective == BUILD, f"{fid}: build properties {effective!r}, expected {BUILD!r}")
    expect(meta.get("BuildMethod") == "rust-cargolambda", f"{fid}: Metadata.BuildMethod is not rust-cargolambda")
    expect(meta.get("BuildProperties") == {"Binary": binary},
           f"{fid}: Metadata.BuildProperties is {meta.get('BuildProperties')!r}, expected Binary {binary!r}")
    notes.append(f"{fid}: binary {binary} (rust-cargolambda, arm64, provided.al2023)")

if problems:
    sys.exit("redelivery wiring problems:\n  " + "\n  ".join(problems))
print("  queues: parked (visibility %ss >= 6 x %ss, redrive after %s receives to refused), refused (redrive only from parked)"
      % (parked.get("VisibilityTimeout"), redelivery.get("Timeout"), parked["RedrivePolicy"]["maxReceiveCount"]))
print("  event source mapping: %s" % ", ".join(sorted(on_parked)))
print("\n".join("  " + n for n in notes))
PY
ok "redelivery wiring, alarms, dashboard and outputs are as the code expects"

step "[7/9] HTTP API routes: the webhook and the OAuth token route"
"$PYTHON" - "$TRANSFORMED" <<'PY'
import json
import sys

from checklib import expect, problems

template = json.load(open(sys.argv[1]))
resources = template["Resources"]
outputs = template.get("Outputs", {})

# path -> the route's event in template.yaml (its invoke permission is WebhookFunction<Event>Permission)
ROUTES = {"/moengage": "MoEngageWebhook", "/oauth/token": "OAuthToken"}
INVOKE = {"Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${WebhookFunction.Arn}/invocations"}


api = resources.get("HttpApi", {})
expect(api.get("Type") == "AWS::ApiGatewayV2::Api", "HttpApi: not an AWS::ApiGatewayV2::Api in the translated template")
paths = api.get("Properties", {}).get("Body", {}).get("paths", {})
expect(sorted(paths) == sorted(ROUTES), f"HttpApi routes are {sorted(paths)}, expected exactly {sorted(ROUTES)}")
for path, event in ROUTES.items():
    methods = paths.get(path, {})
    expect(list(methods) == ["post"], f"{path}: methods {sorted(methods)}, expected POST only")
    integration = methods.get("post", {}).get("x-amazon-apigateway-integration", {})
    expect(integration.get("type") == "aws_proxy" and integration.get("uri") == INVOKE,
           f"{path}: integration is {integration!r}, expected aws_proxy to WebhookFunction")
    expect(integration.get("payloadFormatVersion") == "2.0", f"{path}: payloadFormatVersion is not 2.0")
    permission = resources.get(f"WebhookFunction{event}Permission", {}).get("Properties", {})
    source = permission.get("SourceArn", {}).get("Fn::Sub", [""])[0]
    expect(permission.get("FunctionName") == {"Ref": "WebhookFunction"}
           and permission.get("Principal") == "apigateway.amazonaws.com"
           and source.endswith(f"/POST{path}"),
           f"WebhookFunction{event}Permission: {permission!r} does not let the API invoke POST {path}")
for name, path in (("WebhookUrl", "/moengage"), ("OAuthTokenUrl", "/oauth/token")):
    value = outputs.get(name, {}).get("Value", {})
    expect(value == {"Fn::Sub": "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}" + path},
           f"output {name} is {value!r}, expected the HttpApi's URL + {path}")

if problems:
    sys.exit("route problems:\n  " + "\n  ".join(problems))
for path, event in ROUTES.items():
    print(f"  POST {path} -> WebhookFunction (payload 2.0, WebhookFunction{event}Permission)")
print("  outputs: WebhookUrl, OAuthTokenUrl")
PY
ok "the webhook and the OAuth token route reach the webhook function; their URLs are outputs"

step "[8/9] Backfill (BackfillBucket set): transform with the ASL inline, cfn-lint it, the Distributed Map and its wiring"
ASL=statemachine/backfill.asl.json
BACKFILL_EVENT=events/backfill-items.json
TRANSFORMED_BACKFILL="$WORK/transformed-backfill.json"
BROKEN_BACKFILL="$WORK/transformed-backfill-broken.json"
# The example parameters of the second transform (as in the docs): a customer's export bucket and
# the export prefix the stack may read.
BACKFILL_PARAMS="BackfillBucket=moengage-exports-example BackfillPrefix=exports/acme_"
"$PYTHON" - "$TEMPLATE" "$ASL" "$TRANSFORMED_BACKFILL" "$BROKEN_BACKFILL" $BACKFILL_PARAMS <<'PY'
import copy
import json
import re
import sys

from checklib import parameter_values, transform_offline
from samtranslator.yaml_helper import yaml_parse

src, asl_path, dst, broken_dst, *pairs = sys.argv[1:]
overrides = dict(p.split("=", 1) for p in pairs)
template = yaml_parse(open(src).read())
try:
    asl_text = open(asl_path).read()
    json.loads(asl_text)
except (OSError, json.JSONDecodeError) as e:
    sys.exit(f"{asl_path}: not valid JSON: {e}")
# cfn-lint validates a state machine definition only when it is inline (the Definition object
# of AWS::StepFunctions::StateMachine; not DefinitionS3Location, nor the Fn::Join string SAM
# makes of an inline Definition). So: transform with the example parameters as the defaults,
# then put the ASL inline with the DefinitionSubstitutions applied (to the values CloudFormation
# would substitute; the function's ARN and the results bucket's name are made up): cfn-lint
# then sees what Step Functions would validate.
for name, value in overrides.items():
    template["Parameters"][name]["Default"] = value
values = parameter_values(template)
machine = template["Resources"]["BackfillStateMachine"]["Properties"]
if machine.get("DefinitionUri") != asl_path:
    sys.exit(f"BackfillStateMachine: DefinitionUri is {machine.get('DefinitionUri')!r}, expected {asl_path}")
FAKE = {
    "BackfillFunction.Arn": "arn:aws:lambda:us-east-1:123456789012:function:offline-check-backfill",
    "BackfillResultsBucket": "offline-check-backfill-results",
}


def resolve(expr):
    if isinstance(expr, dict) and list(expr) == ["Ref"] and expr["Ref"] in values:
        return values[expr["Ref"]]
    if isinstance(expr, dict) and list(expr) == ["Ref"]:
        return FAKE[expr["Ref"]]
    if isinstance(expr, dict) and list(expr) == ["Fn::GetAtt"]:
        return FAKE[".".join(expr["Fn::GetAtt"])]
    if isinstance(expr, dict) and list(expr) == ["Fn::Sub"] and isinstance(expr["Fn::Sub"], str):
        return re.sub(r"\$\{([^}]*)\}", lambda m: resolve({"Ref": m.group(1)}), expr["Fn::Sub"])
    sys.exit(f"BackfillStateMachine: cannot resolve the substitution {expr!r}")


substitutions = {k: resolve(v) for k, v in machine.get("DefinitionSubstitutions", {}).items()}
placeholders = set(re.findall(r"\$\{([^}]*)\}", asl_text))
if placeholders != set(substitutions):
    sys.exit(f"{asl_path} placeholders {sorted(placeholders)} != DefinitionSubstitutions {sorted(substitutions)}")
definition = json.loads(re.sub(r"\$\{([^}]*)\}", lambda m: substitutions[m.group(1)], asl_text))
transformed = transform_offline(template, values)
resource = transformed["Resources"]["BackfillStateMachine"]
if resource.get("Type") != "AWS::StepFunctions::StateMachine" or "DefinitionS3Location" not in resource["Properties"]:
    sys.exit(f"BackfillStateMachine: not translated to an AWS::StepFunctions::StateMachine with DefinitionS3Location: {resource!r}")
del resource["Properties"]["DefinitionS3Location"]
resource["Properties"]["Definition"] = definition
with open(dst, "w") as f:
    json.dump(transformed, f, indent=2, sort_keys=True)
# The same with a definition error cfn-lint must report: proof that it reads the definition.
broken = copy.deepcopy(definition)
broken["States"]["Backfill"]["ToleratedFailurePercentage"] = "NOT_A_NUMBER"
resource["Properties"]["Definition"] = broken
with open(broken_dst, "w") as f:
    json.dump(transformed, f, indent=2, sort_keys=True)
print(f"  {asl_path}: valid JSON; placeholders {', '.join(sorted(placeholders))} = DefinitionSubstitutions")
print(f"  transformed with {', '.join(pairs)}; the definition inline, substitutions applied")
PY
cfn-lint "$TRANSFORMED_BACKFILL"
if cfn-lint "$BROKEN_BACKFILL" >"$WORK/broken.log" 2>&1; then
  echo "check-template: cfn-lint accepted ToleratedFailurePercentage \"NOT_A_NUMBER\": it does not validate the inline definition" >&2
  exit 1
fi
grep -q "E3601 'NOT_A_NUMBER'" "$WORK/broken.log" || { cat "$WORK/broken.log" >&2; echo "check-template: cfn-lint failed the broken definition for another reason" >&2; exit 1; }
ok "cfn-lint passes the backfill-enabled template and validates its inline state machine definition (rejects a broken copy)"
"$PYTHON" - "$TEMPLATE" "$TRANSFORMED_BACKFILL" "$ASL" "$BACKFILL_EVENT" <<'PY'
import json
import re
import sys

from checklib import (ALARM_ACTIONS, SECRET, created, expect, getatt, parameter_values, problems,
                      props_of, ref, sub)
from samtranslator.yaml_helper import yaml_parse

source = yaml_parse(open(sys.argv[1]).read())
template = json.load(open(sys.argv[2]))
asl_path, event_path = sys.argv[3], sys.argv[4]
asl = json.load(open(asl_path))
resources = template["Resources"]
props = props_of(resources)
outputs = template.get("Outputs", {})
params = source["Parameters"]
notes = []

LAMBDA_ERRORS = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                 "Lambda.TooManyRequestsException", "Lambda.ClientExecutionTimeoutException"]
ITEM_FIELDS = {"Key": str, "Size": int, "Etag": str, "LastModified": int, "StorageClass": str}
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


# --- With BackfillBucket set, the backfill part exists -------------------------------------------
values = parameter_values(template)
made, made_outputs = created(template, values)
BACKFILL = ["BackfillLogGroup", "BackfillFunctionRole", "BackfillFunction", "BackfillResultsBucket",
            "BackfillStateMachineLogGroup", "BackfillStateMachineRole", "BackfillStateMachine", "BackfillFailedAlarm"]
OUTPUTS = ["BackfillStateMachineArn", "BackfillResultsBucketName", "BackfillFunctionName", "BackfillFunctionRoleArn",
           "BackfillStateMachineRoleArn", "BackfillStartCommand"]
for k in BACKFILL:
    expect(k in made and resources[k].get("Condition") == "BackfillEnabled",
           f"{k}: not created with BackfillBucket={values['BackfillBucket']}, or not Condition BackfillEnabled")
for k in OUTPUTS:
    expect(k in made_outputs and outputs[k].get("Condition") == "BackfillEnabled",
           f"output {k}: missing, or not Condition BackfillEnabled")
extra = sorted(k for k in resources if k.startswith("Backfill") and k not in BACKFILL)
expect(not extra, f"unexpected backfill resources {extra}")
notes.append(f"BackfillBucket={values['BackfillBucket']} BackfillPrefix={values['BackfillPrefix']}: "
             f"{len(BACKFILL)} backfill resources and {len(OUTPUTS)} outputs created")

# --- Parameters: the rate arithmetic -----------------------------------------------------------
groups = [p for g in source["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"] for p in g["Parameters"]]
for name in ("BackfillBucket", "BackfillPrefix", "BackfillMaxConcurrency", "BackfillRatePerChild"):
    expect(name in params and name in groups, f"parameter {name}: missing from Parameters or the interface groups")
concurrency, rate = params.get("BackfillMaxConcurrency", {}), params.get("BackfillRatePerChild", {})
if expect(concurrency.get("Type") == rate.get("Type") == "Number",
          "BackfillMaxConcurrency and BackfillRatePerChild must be Number parameters"):
    c, r = int(concurrency["Default"]), int(rate["Default"])
    expect(r == 20, f"BackfillRatePerChild defaults to {r}, expected 20")
    expect(c * r <= 500, f"defaults {c} x {r} = {c * r} requests/s: not well under Segment's ~1,000 requests/s per workspace")
    expect(f"{c} x {r} = {c * r}" in concurrency.get("Description", "") and "1,000" in concurrency.get("Description", ""),
           f"BackfillMaxConcurrency's description must explain the arithmetic ({c} x {r} = {c * r}, Segment's ~1,000 requests/s)")
    notes.append(f"rate: {c} children x {r} requests/s = {c * r} requests/s at most (Segment: ~1,000 per workspace)")

# --- The function --------------------------------------------------------------------------------
fn = props("BackfillFunction", "AWS::Lambda::Function")
expect(str(fn.get("Timeout")) == "900", f"BackfillFunction: Timeout is {fn.get('Timeout')!r}, expected 900")
expect(fn.get("MemorySize") == ref("MemorySize"), "BackfillFunction: MemorySize is not !Ref MemorySize")
expect(fn.get("Role") == getatt("BackfillFunctionRole", "Arn"), "BackfillFunction: Role is not BackfillFunctionRole")
logging = fn.get("LoggingConfig", {})
expect(logging.get("LogFormat") == "JSON" and logging.get("LogGroup") == ref("BackfillLogGroup"),
       f"BackfillFunction: LoggingConfig is {logging!r}, expected JSON into BackfillLogGroup")
expect(props("BackfillLogGroup", "AWS::Logs::LogGroup").get("LogGroupName") == sub("/aws/lambda/${AWS::StackName}-backfill"),
       "BackfillLogGroup: LogGroupName is not /aws/lambda/${AWS::StackName}-backfill")
env = fn.get("Environment", {}).get("Variables", {})
expected_env = {
    "SECRET_ID": SECRET,
    "SECRET_TTL_SECONDS": ref("SecretTtlSeconds"),
    "RUST_LOG": ref("RustLog"),
    "DEAD_LETTER_QUEUE_URL": ref("DeadLetterQueue"),
    "REFUSED_QUEUE_URL": ref("RefusedQueue"),
    "BACKFILL_RATE": ref("BackfillRatePerChild"),
}
for name in sorted(set(env) | set(expected_env)):
    expect(env.get(name) == expected_env.get(name),
           f"BackfillFunction: environment {name} is {env.get(name)!r}, expected {expected_env.get(name)!r}")
fn_timeout = int(fn.get("Timeout", 0))

# --- The results bucket --------------------------------------------------------------------------
bucket = resources.get("BackfillResultsBucket", {})
b = props("BackfillResultsBucket", "AWS::S3::Bucket")
for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
    expect(bucket.get(policy) == "Retain", f"BackfillResultsBucket: {policy} is {bucket.get(policy)!r}, expected Retain (audit trail)")
sse = b.get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
expect([r.get("ServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in sse] == ["AES256"],
       f"BackfillResultsBucket: encryption is {sse!r}, expected SSE-S3 (AES256)")
block = b.get("PublicAccessBlockConfiguration", {})
expect(all(block.get(k) in (True, "true") for k in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")),
       f"BackfillResultsBucket: public access not fully blocked: {block!r}")
expect(b.get("OwnershipControls") == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
       f"BackfillResultsBucket: OwnershipControls is {b.get('OwnershipControls')!r}, expected BucketOwnerEnforced")
rules = b.get("LifecycleConfiguration", {}).get("Rules", [])
expect(any(r.get("Status") == "Enabled" and str(r.get("ExpirationInDays")) == "30" and "Prefix" not in r and "Filter" not in r
           for r in rules), f"BackfillResultsBucket: no enabled rule expiring every object after 30 days: {rules!r}")

# --- The state machine resource --------------------------------------------------------------------
sm = props("BackfillStateMachine", "AWS::StepFunctions::StateMachine")
# The name is fixed: the role builds the state machine's and its executions' ARNs from it.
expect(sm.get("StateMachineName") == sub("${AWS::StackName}-backfill"),
       f"BackfillStateMachine: StateMachineName is {sm.get('StateMachineName')!r}, expected ${{AWS::StackName}}-backfill")
expect(sm.get("StateMachineType") == "STANDARD", f"BackfillStateMachine: type is {sm.get('StateMachineType')!r}, expected STANDARD")
expect(sm.get("RoleArn") == getatt("BackfillStateMachineRole", "Arn"), "BackfillStateMachine: RoleArn is not BackfillStateMachineRole")
log = sm.get("LoggingConfiguration", {})
expect(log.get("Level") == "ERROR" and log.get("IncludeExecutionData") in (False, "false")
       and log.get("Destinations") == [{"CloudWatchLogsLogGroup": {"LogGroupArn": getatt("BackfillStateMachineLogGroup", "Arn")}}],
       f"BackfillStateMachine: LoggingConfiguration is {log!r}, expected ERROR, no execution data, to BackfillStateMachineLogGroup")
expect(props("BackfillStateMachineLogGroup", "AWS::Logs::LogGroup").get("LogGroupName")
       == sub("/aws/vendedlogs/states/${AWS::StackName}-backfill"),
       "BackfillStateMachineLogGroup: LogGroupName is not /aws/vendedlogs/states/${AWS::StackName}-backfill")
source_sm = source["Resources"]["BackfillStateMachine"]["Properties"]
substitutions = source_sm.get("DefinitionSubstitutions", {})
expected_subs = {
    "BackfillFunctionArn": getatt("BackfillFunction", "Arn"),
    "ExportBucket": ref("BackfillBucket"),
    "ExportPrefixPattern": sub("${BackfillPrefix}*"),
    "ResultsBucket": ref("BackfillResultsBucket"),
    "MaxConcurrency": ref("BackfillMaxConcurrency"),
}
expect(substitutions == expected_subs, f"BackfillStateMachine: DefinitionSubstitutions are {substitutions!r}, expected {expected_subs!r}")

# --- The definition (statemachine/backfill.asl.json, placeholders as written) ------------------
states = asl.get("States", {})


def successors(state):
    nxt = [state.get("Next"), state.get("Default")] + [c.get("Next") for c in state.get("Choices", [])]
    nxt += [c.get("Next") for c in state.get("Catch", [])]
    return [n for n in nxt if n]


reachable, todo = set(), [asl.get("StartAt")]
while todo:
    name = todo.pop()
    if name in reachable:
        continue
    if not expect(name in states, f"{asl_path}: state {name!r} is referenced but not defined"):
        continue
    reachable.add(name)
    todo += successors(states[name])
expect(reachable == set(states), f"{asl_path}: unreachable states {sorted(set(states) - reachable)}")
expect(any(states[n].get("Type") == "Succeed" for n in reachable), f"{asl_path}: no Succeed state")


def rules(choice):
    """Every comparison of a Choice rule, nested And/Or/Not included."""
    if isinstance(choice, dict):
        if "Variable" in choice:
            yield choice
        for k in ("And", "Or"):
            for c in choice.get(k, []):
                yield from rules(c)
        if "Not" in choice:
            yield from rules(choice["Not"])


start = states.get(asl.get("StartAt"), {})
comparisons = [c for rule in start.get("Choices", []) for c in rules(rule)]
expect(start.get("Type") == "Choice"
       and {"Variable": "$.bucket", "StringEquals": "${ExportBucket}"} in comparisons
       and {"Variable": "$.prefix", "StringMatches": "${ExportPrefixPattern}"} in comparisons,
       f"{asl_path}: StartAt must be a Choice that only lets in bucket == ${{ExportBucket}} and a prefix matching ${{ExportPrefixPattern}}")

maps = {n: s for n, s in states.items() if s.get("Type") == "Map"}
if expect(len(maps) == 1, f"{asl_path}: expected one Map state, found {sorted(maps)}"):
    (map_name, m), = maps.items()
    processor = m.get("ItemProcessor", {})
    expect(processor.get("ProcessorConfig") == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
           f"{map_name}: ProcessorConfig is {processor.get('ProcessorConfig')!r}, expected DISTRIBUTED, STANDARD")
    # The role's child-execution ARNs (execution:<name>/Backfill:*) use the Map Run's label.
    expect(m.get("Label") == "Backfill", f"{map_name}: Label is {m.get('Label')!r}, expected Backfill (the IAM ARNs use it)")
    expect(m.get("ItemReader") == {"Resource": "arn:aws:states:::s3:listObjectsV2",
                                   "Parameters": {"Bucket.$": "$.bucket", "Prefix.$": "$.prefix"}},
           f"{map_name}: ItemReader is {m.get('ItemReader')!r}, expected s3:listObjectsV2 over $.bucket/$.prefix")
    batcher = m.get("ItemBatcher", {})
    per_batch = batcher.get("MaxItemsPerBatch")
    expect(isinstance(per_batch, int) and 1 <= per_batch <= 10,
           f"{map_name}: ItemBatcher.MaxItemsPerBatch is {per_batch!r}, expected a small number (1..10)")
    batch_input = batcher.get("BatchInput")
    expect(batch_input == {"bucket.$": "$.bucket", "since.$": "$.since", "until.$": "$.until"},
           f"{map_name}: ItemBatcher.BatchInput is {batch_input!r}, expected bucket, since, until")
    # MaxConcurrency is tied to the BackfillMaxConcurrency parameter: a substitution is a string,
    # so the state before the map turns it into a number that MaxConcurrencyPath reads.
    expect("MaxConcurrency" not in m, f"{map_name}: a literal MaxConcurrency is not tied to BackfillMaxConcurrency")
    path = m.get("MaxConcurrencyPath", "")
    field = path[2:] if path.startswith("$.") else None
    before = [n for n, s in states.items() if s.get("Next") == map_name]
    expect(field and before and all(states[n].get("Type") == "Pass"
                                    and states[n].get("Parameters", {}).get(f"{field}.$") == "States.StringToJson('${MaxConcurrency}')"
                                    for n in before),
           f"{map_name}: MaxConcurrencyPath {path!r} must read a field the preceding Pass sets to "
           "States.StringToJson('${MaxConcurrency}')")
    expect(m.get("ToleratedFailurePercentage") == 0 and not any(k.startswith("ToleratedFailureCount") or k == "ToleratedFailurePercentagePath" for k in m),
           f"{map_name}: ToleratedFailurePercentage must be 0 (no failure tolerated silently)")
    writer = m.get("ResultWriter", {})
    expect(writer.get("Resource") == "arn:aws:states:::s3:putObject"
           and writer.get("Parameters", {}).get("Bucket") == "${ResultsBucket}",
           f"{map_name}: ResultWriter is {writer!r}, expected s3:putObject to ${{ResultsBucket}}")
    prefix = writer.get("Parameters", {}).get("Prefix", "")
    role = source["Resources"]["BackfillStateMachineRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    writes = [st.get("Resource") for st in role if "s3:PutObject" in st.get("Action", [])]
    expect(prefix and writes == [sub("${BackfillResultsBucket.Arn}/" + prefix.strip("/") + "/*")],
           f"{map_name}: ResultWriter Prefix {prefix!r} and the role's s3:PutObject resource {writes!r} disagree")
    expect(not any("Catch" in s for s in processor.get("States", {}).values()),
           f"{map_name}: a Catch in the child workflow would hide a failed batch")
    tasks = {n: s for n, s in processor.get("States", {}).items() if s.get("Type") == "Task"}
    if expect(len(tasks) == 1, f"{map_name}: expected one Task in the child workflow, found {sorted(tasks)}"):
        (task_name, task), = tasks.items()
        expect(task.get("Resource") == "arn:aws:states:::lambda:invoke"
               and task.get("Parameters") == {"FunctionName": "${BackfillFunctionArn}", "Payload.$": "$"},
               f"{task_name}: must invoke ${{BackfillFunctionArn}} (lambda:invoke) with the batch as Payload")
        expect(task.get("OutputPath") == "$.Payload" or task.get("ResultSelector") == {"Payload.$": "$.Payload"},
               f"{task_name}: must keep the function's JSON result (OutputPath $.Payload)")
        expect(int(task.get("TimeoutSeconds", 0)) > fn_timeout,
               f"{task_name}: TimeoutSeconds {task.get('TimeoutSeconds')!r} must exceed the function's {fn_timeout} s")
        retries = task.get("Retry", [])
        errors = [e for r in retries for e in r.get("ErrorEquals", [])]
        expect(not {"States.ALL", "States.TaskFailed"} & set(errors),
               f"{task_name}: a Retry on States.ALL/States.TaskFailed would re-run permanent failures")
        missing = [e for e in LAMBDA_ERRORS if e not in errors]
        expect(not missing, f"{task_name}: no Retry on {missing}")
        incomplete = [r for r in retries if "BackfillIncomplete" in r.get("ErrorEquals", [])]
        expect(incomplete and all(int(r.get("MaxAttempts", 3)) >= 1 and float(r.get("BackoffRate", 2)) > 1
                                  and int(r.get("IntervalSeconds", 1)) >= 10 for r in incomplete),
               f"{task_name}: needs a Retry on BackfillIncomplete with backoff (IntervalSeconds >= 10, BackoffRate > 1)")
        notes.append(f"{asl_path}: {' -> '.join(n for n in ('CheckInput', 'Configure', map_name, 'Done') if n in states)}; "
                     f"{map_name}: Distributed (STANDARD children), listObjectsV2, batches of {per_batch}, "
                     f"MaxConcurrencyPath <- BackfillMaxConcurrency, ToleratedFailurePercentage 0, ResultWriter "
                     f"${{ResultsBucket}}/{prefix}; {task_name}: lambda:invoke, Retry {len(LAMBDA_ERRORS)} Lambda errors + BackfillIncomplete")

    # --- The sample event: what one child execution passes to the function ------------------------
    try:
        event = json.load(open(event_path))
    except (OSError, json.JSONDecodeError) as e:
        event = None
        problems.append(f"{event_path}: not valid JSON: {e}")
    if event is not None and expect(isinstance(event, dict) and set(event) == {"BatchInput", "Items"},
                                    f"{event_path}: expected exactly BatchInput and Items"):
        fields = {k[:-2] for k in (batch_input or {})}
        expect(set(event["BatchInput"]) == fields, f"{event_path}: BatchInput keys {sorted(event['BatchInput'])} != the map's {sorted(fields)}")
        for k in ("since", "until"):
            v = event["BatchInput"].get(k)
            expect(v is None or (isinstance(v, str) and RFC3339.match(v)), f"{event_path}: BatchInput.{k} {v!r} is not null or RFC 3339")
        items = event["Items"]
        expect(isinstance(items, list) and 1 <= len(items) <= (per_batch or 0),
               f"{event_path}: {len(items) if isinstance(items, list) else items!r} items, expected 1..{per_batch}")
        for i, item in enumerate(items if isinstance(items, list) else []):
            expect(isinstance(item, dict) and set(item) == set(ITEM_FIELDS)
                   and all(isinstance(item[k], t) for k, t in ITEM_FIELDS.items()),
                   f"{event_path}: Items[{i}] must have exactly {', '.join(f'{k} ({t.__name__})' for k, t in ITEM_FIELDS.items())}")
        notes.append(f"{event_path}: BatchInput {{{', '.join(sorted(fields))}}} + {len(items)} Items "
                     f"({', '.join(ITEM_FIELDS)}), the shape of an s3:listObjectsV2 ItemReader batch")

# --- The alarm ---------------------------------------------------------------------------------
alarm = props("BackfillFailedAlarm", "AWS::CloudWatch::Alarm")
sm_metrics = [x["MetricStat"]["Metric"] for x in alarm.get("Metrics", []) if "MetricStat" in x]
expect({"Namespace": "AWS/States", "MetricName": "ExecutionsFailed",
        "Dimensions": [{"Name": "StateMachineArn", "Value": ref("BackfillStateMachine")}]} in sm_metrics,
       "BackfillFailedAlarm: does not watch AWS/States ExecutionsFailed of BackfillStateMachine")
expect(str(alarm.get("Threshold")) in ("1", "1.0") and alarm.get("ComparisonOperator") == "GreaterThanOrEqualToThreshold",
       "BackfillFailedAlarm: must alarm on at least 1 failed execution")
expect(alarm.get("AlarmActions") == ALARM_ACTIONS and alarm.get("OKActions") == ALARM_ACTIONS,
       "BackfillFailedAlarm: AlarmActions/OKActions must be !If [HasAlarmEmail, [!Ref AlarmTopic], !Ref AWS::NoValue]")

# --- Outputs -----------------------------------------------------------------------------------
for name, value in (("BackfillStateMachineArn", ref("BackfillStateMachine")),
                    ("BackfillResultsBucketName", ref("BackfillResultsBucket")),
                    ("BackfillFunctionName", ref("BackfillFunction")),
                    ("BackfillFunctionRoleArn", getatt("BackfillFunctionRole", "Arn")),
                    ("BackfillStateMachineRoleArn", getatt("BackfillStateMachineRole", "Arn"))):
    expect(outputs.get(name, {}).get("Value") == value, f"output {name} is not {value!r}")
command = outputs.get("BackfillStartCommand", {}).get("Value", {}).get("Fn::Sub", "")
match = re.search(r"--input '([^']*)'", command if isinstance(command, str) else "")
if expect(isinstance(command, str) and command.startswith("aws stepfunctions start-execution ")
          and "--state-machine-arn ${BackfillStateMachine}" in command and match and "\n" not in command,
          f"output BackfillStartCommand is not one start-execution line with --input: {command!r}"):
    start = json.loads(match.group(1).replace("${BackfillBucket}", "B").replace("${BackfillPrefix}", "P"))
    expect(set(start) == {"bucket", "prefix", "since", "until"} and start["bucket"] == "B" and start["prefix"].startswith("P")
           and all(start[k] is None or RFC3339.match(start[k]) for k in ("since", "until")),
           f"output BackfillStartCommand: --input {match.group(1)} is not the state machine's input")
    notes.append(f"outputs: {', '.join(OUTPUTS)}")

if problems:
    sys.exit("backfill problems:\n  " + "\n  ".join(problems))
print("\n".join("  " + n for n in notes))
PY
ok "backfill: Distributed Map over the export prefix, its function, results bucket, alarm and outputs are wired"

if [[ "$BUILD" -eq 1 ]]; then
  step "[9/9] sam build (rust-cargolambda, arm64): each function's own binary"
  command -v cargo-lambda >/dev/null || { echo "check-template: cargo-lambda not on PATH" >&2; exit 2; }
  BUILD_DIR=.aws-sam/build
  BUILD_LOG="$WORK/sam-build.log"
  # No --cached: samconfig.toml builds from scratch; the .aws-sam folder stays (git-ignored).
  sam build --template-file "$TEMPLATE" --build-dir "$BUILD_DIR" 2>&1 | tee "$BUILD_LOG"
  for function_id in $FUNCTION_IDS; do
    [[ -f "$BUILD_DIR/$function_id/bootstrap" ]] || { echo "check-template: $BUILD_DIR/$function_id/bootstrap was not built" >&2; exit 1; }
  done
  "$PYTHON" - $(for f in $FUNCTION_IDS; do echo "$BUILD_DIR/$f/bootstrap"; done) <<'PY'
import hashlib
import struct
import sys

digests = {}
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        data = f.read()
    header = data[:20]
    if header[:4] != b"\x7fELF":
        sys.exit(f"{path}: not an ELF file")
    if header[4] != 2:
        sys.exit(f"{path}: not a 64-bit ELF")
    byte_order = "<" if header[5] == 1 else ">"
    (machine,) = struct.unpack(byte_order + "H", header[18:20])
    if machine != 183:  # EM_AARCH64
        sys.exit(f"{path}: e_machine is {machine}, expected 183 (aarch64)")
    digests[path] = hashlib.sha256(data).hexdigest()
    print(f"  {path}: ELF64, e_machine=183 (aarch64), {len(data):,} bytes, sha256 {digests[path][:16]}")
if len(set(digests.values())) != len(digests):
    sys.exit("two functions got the same bootstrap, but each runs its own binary")
PY
  if command -v file >/dev/null; then
    for function_id in $FUNCTION_IDS; do file "$BUILD_DIR/$function_id/bootstrap"; done
  fi
  ok "arm64 bootstraps built for $FUNCTION_IDS"
else
  step "[9/9] sam build skipped (pass --build to build the arm64 bootstrap with cargo-lambda)"
fi

printf '\nAll template checks passed.\n'
