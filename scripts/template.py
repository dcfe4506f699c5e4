#!/usr/bin/env python3
"""template.yaml as AWS deploys it: the SAM transform run offline, and checks over its output.

    python3 scripts/template.py check       # the deployed-path checks below; exits 1 on a finding
    python3 scripts/template.py policies    # each function's IAM policy documents, as JSON

`check` fails on what lint cannot see:
- a mock OPTIONS integration (what SAM's `Cors` generates) while the API's binary media types take
  `*/*` without `contentHandling: CONVERT_TO_TEXT`: API Gateway answers such preflights 500
  (aws/serverless-application-model#553); and any path whose OPTIONS does not reach a function;
- gateway responses whose body claims a status the response does not have;
- a function invoked asynchronously by an EventBridge rule without an on-failure destination, or a
  rule target without a dead-letter queue: after the retries its failed events would be dropped;
- a row of the README's function table whose memory, timeout or AWS services (the services its
  role's own policies name) differ from the template's.
It also proves it can fail: the same checks over the template with SAM's `Cors` put back must
report the mock preflights.

`policies` resolves every function role's inline policies (intrinsics substituted: partition `aws`,
region `us-east-1`, account `123456789012`, the bucket `codechat-test-bucket`) so a test can hand
exactly that document to an IAM user in moto (tests/api/iam.rs).

Needs `aws-sam-translator` and PyYAML (pip).
"""
import copy
import json
import logging
import os
import re
import sys

import yaml
from samtranslator.translator.transform import transform

# The translator's own notes (feature toggles, metrics) are not findings.
logging.disable(logging.WARNING)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGION, ACCOUNT, PARTITION = "us-east-1", "123456789012", "aws"
BUCKET = "codechat-test-bucket"
PARAMETERS = {
    "LibsqlUrl": "libsql://codechat-test.turso.io",
    "LibsqlAuthTokenSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:libsql-token-AbCdEf",
    # More parameter values for one run (a test's): a JSON object.
    **json.loads(os.environ.get("TEMPLATE_PARAMETERS", "{}")),
}


class _Loader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !Sub, ...) as their long forms."""


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_Loader.add_multi_constructor("!", _tag)


class _NoManagedPolicies:
    def load(self):
        return {}


def load(text=None):
    if text is None:
        with open(os.path.join(ROOT, "template.yaml")) as f:
            text = f.read()
    return yaml.load(text, Loader=_Loader)


def translate(template):
    """The CloudFormation AWS deploys for `template` (a dict)."""
    template = copy.deepcopy(template)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://codechat-artifacts/code.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    return transform(template, dict(PARAMETERS), _NoManagedPolicies())


def rest_api(cfn):
    apis = [r for r in cfn["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    assert len(apis) == 1, f"one REST API expected, found {len(apis)}"
    return apis[0]["Properties"]


def preflight_findings(cfn):
    """Mock preflights that API Gateway would answer 500, and paths whose OPTIONS reaches nothing."""
    api = rest_api(cfn)
    body = api["Body"]
    binary = [t.replace("~1", "/") for t in body.get("x-amazon-apigateway-binary-media-types", [])]
    binary += [t.replace("~1", "/") for t in api.get("BinaryMediaTypes", [])]
    everything_binary = "*/*" in binary
    findings = []
    for path, methods in body["paths"].items():
        options = methods.get("options")
        if options is not None:
            integration = options.get("x-amazon-apigateway-integration", {})
            if (
                integration.get("type") == "mock"
                and everything_binary
                and integration.get("contentHandling") != "CONVERT_TO_TEXT"
            ):
                findings.append(f"{path}: a mock OPTIONS under */* binary types answers 500")
        reaches_function = any(
            m.get("x-amazon-apigateway-integration", {}).get("type") == "aws_proxy"
            for name, m in methods.items()
            if name in ("options", "x-amazon-apigateway-any-method")
        )
        if not reaches_function:
            findings.append(f"{path}: OPTIONS does not reach a function")
    return findings


def gateway_response_findings(cfn):
    findings = []
    responses = rest_api(cfn)["Body"].get("x-amazon-apigateway-gateway-responses", {})
    for kind, response in responses.items():
        status = response.get("statusCode")
        for body in response.get("responseTemplates", {}).values():
            claimed = re.search(r'"status"\s*:\s*(\d+)', body)
            if claimed and claimed.group(1) != str(status):
                findings.append(f"{kind}: the body says status {claimed.group(1)}, "
                                f"the response has {status or 'the status of the error'}")
    return findings


def async_failure_findings(cfn):
    findings = []
    resources = cfn["Resources"]
    destinations = {
        r["Properties"]["FunctionName"]["Ref"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::EventInvokeConfig"
        and r["Properties"].get("DestinationConfig", {}).get("OnFailure")
    }
    for name, rule in resources.items():
        if rule["Type"] != "AWS::Events::Rule":
            continue
        for target in rule["Properties"].get("Targets", []):
            function = target["Arn"].get("Fn::GetAtt", [None])[0]
            if "DeadLetterConfig" not in target:
                findings.append(f"{name}: the rule's target has no dead-letter queue")
            if function and function not in destinations:
                findings.append(f"{name}: {function} has no on-failure destination")
    return findings


SERVICES = {
    "s3": "S3",
    "secretsmanager": "Secrets Manager",
    "bedrock": "Bedrock",
    "execute-api": "API Gateway (connections)",
    "sqs": "SQS",
}


def conditions(cfn):
    """Each condition's value under the parameters used here (defaults, and PARAMETERS)."""
    values = {}

    def evaluate(expr):
        (key, arg), = expr.items()
        if key == "Fn::Equals":
            return str(resolve(arg[0], cfn, values)) == str(resolve(arg[1], cfn, values))
        if key == "Fn::Not":
            return not evaluate(arg[0])
        if key == "Fn::And":
            return all(evaluate(a) for a in arg)
        if key == "Fn::Or":
            return any(evaluate(a) for a in arg)
        if key == "Condition":
            return evaluate(cfn["Conditions"][arg])
        raise ValueError(f"condition {expr}")

    for name, expr in cfn.get("Conditions", {}).items():
        values[name] = evaluate(expr)
    return values


def role_documents(cfn, function):
    role = cfn["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    values = conditions(cfn)
    documents = []
    for p in cfn["Resources"][role]["Properties"].get("Policies", []):
        # A policy the template gives under a condition: its branch, or none.
        while "Fn::If" in p:
            name, yes, no = p["Fn::If"]
            p = yes if values[name] else no
        if p != {"Ref": "AWS::NoValue"}:
            documents.append(resolve(p["PolicyDocument"], cfn, values))
    return documents


def readme_findings(cfn):
    """The README's function table against the template: memory, timeout, AWS services."""
    with open(os.path.join(ROOT, "README.md")) as f:
        rows = re.findall(r"^\| `([a-z]+)` \| (\d+) MB, (\d+) s \| ([^|]*) \|", f.read(), re.M)
    findings = []
    functions = {n for n, r in cfn["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
    named = {name.capitalize() + "Function" for name, *_ in rows}
    for missing in sorted(functions - named):
        findings.append(f"README: no row for {missing}")
    for name, memory, timeout, services in rows:
        function = name.capitalize() + "Function"
        props = cfn["Resources"].get(function, {}).get("Properties")
        if props is None:
            findings.append(f"README: {name} is not a function of the template")
            continue
        if (int(memory), int(timeout)) != (props["MemorySize"], props["Timeout"]):
            findings.append(f"README: {name} says {memory} MB, {timeout} s; the template "
                            f"{props['MemorySize']} MB, {props['Timeout']} s")
        used = set()
        for document in role_documents(cfn, function):
            for statement in document["Statement"]:
                actions = statement["Action"]
                for action in [actions] if isinstance(actions, str) else actions:
                    used.add(SERVICES.get(action.split(":")[0], action.split(":")[0]))
        said = {s.strip() for s in services.split(",") if s.strip()} - {"none"}
        if said != used:
            findings.append(f"README: {name} says it calls {sorted(said)}; its policies allow {sorted(used)}")
    return findings


def check():
    template = load()
    cfn = translate(template)
    findings = (
        preflight_findings(cfn)
        + gateway_response_findings(cfn)
        + async_failure_findings(cfn)
        + readme_findings(cfn)
    )

    # The check must be able to fail: SAM's Cors property brings back the mock preflights.
    with_cors = copy.deepcopy(template)
    with_cors["Resources"]["Api"]["Properties"]["Cors"] = {"AllowOrigin": "'*'"}
    if not any("mock OPTIONS" in f for f in preflight_findings(translate(with_cors))):
        findings.append("self-check: a template with SAM's Cors was not reported")

    for f in findings:
        print(f"template: {f}", file=sys.stderr)
    if findings:
        sys.exit(1)
    print(f"template: {len(rest_api(cfn)['Body']['paths'])} paths, preflights reach the functions, "
          "gateway responses consistent, worker failures kept, README's function table in step")


def resolve(value, cfn, conditions):
    """Substitutes the intrinsics a policy document uses."""
    if isinstance(value, list):
        return [resolve(v, cfn, conditions) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (key, arg), = value.items()
        if key == "Ref":
            return ref(arg, cfn)
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            variables = {k: resolve(v, cfn, conditions) for k, v in variables.items()}

            def sub(m):
                name = m.group(1)
                if name in variables:
                    return str(variables[name])
                if "." in name:
                    return get_att(name.split(".", 1), cfn)
                return str(ref(name, cfn))

            return re.sub(r"\$\{([^}!]+)\}", sub, text)
        if key == "Fn::GetAtt":
            return get_att(arg, cfn)
        if key == "Fn::If":
            name, yes, no = arg
            return resolve(yes if conditions[name] else no, cfn, conditions)
        if key == "Fn::Join":
            sep, items = arg
            # The list may itself be a reference (a CommaDelimitedList parameter).
            items = resolve(items, cfn, conditions)
            items = items.split(",") if isinstance(items, str) else items
            return sep.join(str(resolve(i, cfn, conditions)) for i in items)
    return {k: resolve(v, cfn, conditions) for k, v in value.items()}


def ref(name, cfn):
    pseudo = {"AWS::Partition": PARTITION, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
              "AWS::StackName": "codechat", "AWS::URLSuffix": "amazonaws.com"}
    if name in pseudo:
        return pseudo[name]
    if name in PARAMETERS:
        return PARAMETERS[name]
    if name in cfn.get("Parameters", {}):
        return cfn["Parameters"][name].get("Default", "")
    resource = cfn["Resources"].get(name)
    if resource is None:
        raise KeyError(name)
    if resource["Type"] == "AWS::S3::Bucket":
        return BUCKET
    if resource["Type"] == "AWS::SecretsManager::Secret":
        return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf"
    return name


def get_att(arg, cfn):
    name, attribute = arg
    if attribute == "Arn":
        resource = cfn["Resources"][name]
        kind = resource["Type"]
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{BUCKET}"
        if kind == "AWS::SQS::Queue":
            return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        return f"arn:aws:{kind.split('::')[1].lower()}:{REGION}:{ACCOUNT}:{name}"
    if attribute == "QueueName":
        return name
    return f"{name}.{attribute}"


def policies():
    cfn = translate(load())
    out = {}
    for name, resource in cfn["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function":
            out[name] = {"documents": role_documents(cfn, name)}
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    {"check": check, "policies": policies}[sys.argv[1] if len(sys.argv) > 1 else "check"]()
