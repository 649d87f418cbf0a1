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
#   6. redelivery wiring in the result: both queues (retention, Retain, redrive to the refused
#      queue, visibility timeout >= 6x the redelivery timeout), the SQS event source mapping,
#      the functions' queue settings, the alarms, the dashboard (valid JSON once substituted,
#      all metric names and both queues), the outputs, and each function's build (its own
#      binary of this crate, built by cargo-lambda for arm64)
#   7. HTTP API routes in the result: exactly POST /moengage and POST /oauth/token (the OAuth
#      2.0 token route), both to the webhook function with payload 2.0, each with its own
#      invoke permission; the WebhookUrl and OAuthTokenUrl outputs
#   8. (--build only) sam build with cargo-lambda: each function's bootstrap is its own
#      binary, an aarch64 ELF
set -euo pipefail

BUILD=0
case "${1:-}" in
  --build) BUILD=1 ;;
  "") ;;
  *) echo "usage: $0 [--build]" >&2; exit 2 ;;
esac

TEMPLATE=template.yaml
# Each function and the binary of this crate it runs (BuildProperties.Binary).
FUNCTION_BINARIES="WebhookFunction:webhook RedeliveryFunction:redeliver"
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

step "[1/8] cfn-lint $TEMPLATE"
cfn-lint "$TEMPLATE"
ok "cfn-lint: no errors, warnings or informational findings"

step "[2/8] sam validate --lint"
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

step "[3/8] samconfig.toml parameter_overrides against the template's parameters"
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

step "[4/8] aws-sam-translator: transform offline, then cfn-lint the CloudFormation JSON"
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

step "[5/8] IAM: each role holds exactly its function's grants; no wildcards"
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

step "[6/8] Redelivery: queues, event source mapping, alarms, dashboard, outputs, builds"
"$PYTHON" - "$TEMPLATE" "$TRANSFORMED" <<'PY'
import json
import re
import sys

from samtranslator.yaml_helper import yaml_parse

source = yaml_parse(open(sys.argv[1]).read())
template = json.load(open(sys.argv[2]))
params = template.get("Parameters", {})
resources = template["Resources"]
outputs = template.get("Outputs", {})
problems = []
notes = []

METRICS = ["Received", "Forwarded", "Rejected", "Retried", "Parked", "Refused", "Redelivered",
           "Filtered", "Identifies", "MappingOptionsInvalid", "SegmentLatencyMs"]
SECRET = {"Fn::If": ["UseExistingSecret", {"Ref": "ExistingSecretArn"}, {"Ref": "WebhookSecret"}]}
ALARM_ACTIONS = {"Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]}


def ref(x):
    return {"Ref": x}


def getatt(x, attr):
    return {"Fn::GetAtt": [x, attr]}


def props(logical_id, rtype):
    resource = resources.get(logical_id)
    if resource is None or resource.get("Type") != rtype:
        problems.append(f"{logical_id}: missing, or not {rtype}")
        return {}
    return resource.get("Properties", {})


def number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def expect(cond, message):
    if not cond:
        problems.append(message)
    return cond


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
            missing_alarms = sorted(k for k in alarms if f"SUB({k}.Arn)" not in alarm_arns)
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

step "[7/8] HTTP API routes: the webhook and the OAuth token route"
"$PYTHON" - "$TRANSFORMED" <<'PY'
import json
import sys

template = json.load(open(sys.argv[1]))
resources = template["Resources"]
outputs = template.get("Outputs", {})
problems = []

# path -> the route's event in template.yaml (its invoke permission is WebhookFunction<Event>Permission)
ROUTES = {"/moengage": "MoEngageWebhook", "/oauth/token": "OAuthToken"}
INVOKE = {"Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${WebhookFunction.Arn}/invocations"}


def expect(cond, message):
    if not cond:
        problems.append(message)
    return cond


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

if [[ "$BUILD" -eq 1 ]]; then
  step "[8/8] sam build (rust-cargolambda, arm64): each function's own binary"
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
  step "[8/8] sam build skipped (pass --build to build the arm64 bootstrap with cargo-lambda)"
fi

printf '\nAll template checks passed.\n'
