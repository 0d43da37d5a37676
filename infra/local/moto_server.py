"""moto server as the local stack runs it: one request at a time, and IAM enforced as AWS does.

One at a time: moto handles requests on threads and does not lock its DynamoDB tables, so two
concurrent conditional writes can both succeed there, which DynamoDB never allows. eddo's
exactly-once guarantees rest on conditional writes, so each request is served whole before the
next (the local stack never long-polls, so nothing waits on another request).

IAM (with EDDO_IAM=1): every request must be signed by a known identity and allowed by its
policies, as in AWS. moto can check only the action: it knows no resource for most services, and
it authorizes some calls under names IAM does not have (TransactWriteItems). So for the services
eddo's functions call, this server asks what AWS asks, request by request:

- DynamoDB: each item of a transaction or batch under the action AWS checks for it (PutItem,
  UpdateItem, DeleteItem, ConditionCheckItem, GetItem), on its table or index ARN, with the
  `dynamodb:LeadingKeys` of the key it touches;
- EventBridge PutEvents: each entry on its bus's ARN, with `events:source` and
  `events:detail-type`, and against the bus's resource policy (its EventBusPolicy statements, with
  `aws:PrincipalArn`): an explicit Deny there refuses the entry whatever the identity allows;
- SSM GetParameter(s): the parameter's ARN; Secrets Manager GetSecretValue: the secret's ARN;
  KMS: the key's ARN.

- CloudWatch DescribeAlarms: each named alarm's ARN; ListTagsForResource: the resource's ARN;
- ECR DescribeImageScanFindings: the repository's ARN, with its tags as `aws:ResourceTag/<key>`;
  Inspector ListFindings: "*" (it has no resource-level permissions).

Each is evaluated against the caller's policies (a role's inline and attached managed policies,
AWS's published documents for AWS managed ones) with IAM's logic: an explicit Deny wins, else an
Allow whose Action, Resource and Condition match. A refusal is AWS's AccessDeniedException, naming
the identity, the action and the resource. Other calls (the administrator's provisioning) are
checked for their action only.

It binds its own port (0: any free one); the first line it prints says which, and the access key
of the administrator the local stack provisions with, created here before serving
({"port": ..., "access_key_id": ..., "secret_access_key": ...}). Two endpoints
stand in for what AWS services do inside AWS:
- POST /_eddo/authorize (JSON {access_key_id [session_token] | role_arn service, action,
  resource, context}): the same
  evaluation, for the CodeBuild stand-in's StartBuild and for EventBridge's CodeBuild targets
  (their rule's role), so there is one IAM evaluation for every call;
- POST /_eddo/assume-role (JSON {role_arn, service, session_name}): the session Lambda gets for a
  function's execution role, only where the role's trust policy lets that service assume it.
- GET /_eddo/decisions: every authorization asked of a role so far (principal, action,
  resource), for the test that roles grant nothing their functions do not use.

CloudWatch in Smithy RPC v2 CBOR, as the AWS SDKs speak it: moto answers CloudWatch in JSON 1.0
and query only, so a CBOR request is put into JSON for it, and its answer back into CBOR.

Input transformers as EventBridge applies them: moto pastes a string value into the template as
it is, so a JSON template with a placeholder outside quotes (`{"v": <v>}`, as the CDK writes
`RuleTargetInput.fromObject`) becomes invalid JSON there; EventBridge inserts the value as JSON
(a string quoted), and inside quotes as the string's text. This server does the same.

Usage: python moto_server.py HOST PORT (0 for any free port)
"""

import io
import json
import os
import re
import socket
import sys
import threading

ACCOUNT = "123456789012"
IAM = os.environ.get("EDDO_IAM") == "1"
if IAM:
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    # AWS managed policies (AWSLambdaBasicExecutionRole, ...) with their published documents.
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"

from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402
from werkzeug.wrappers import Request, Response  # noqa: E402


# ---- IAM's evaluation logic ---------------------------------------------------------------------


def as_list(v):
    return v if isinstance(v, list) else [v]


def matches(pattern, value, case_sensitive=True):
    """IAM's wildcards: * any run of characters, ? any one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


STRING_OPS = {
    "StringEquals": lambda p, v: p == v,
    "StringNotEquals": lambda p, v: p != v,
    "StringLike": lambda p, v: matches(p, v),
    "StringNotLike": lambda p, v: not matches(p, v),
    "ArnEquals": lambda p, v: p == v,
    "ArnLike": lambda p, v: matches(p, v),
    "ArnNotEquals": lambda p, v: p != v,
    "ArnNotLike": lambda p, v: not matches(p, v),
}
NEGATED = {"StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike"}


class UnsupportedCondition(Exception):
    pass


def condition_holds(operator, key, expected, context):
    """One condition of a statement, as IAM evaluates it against the request's context."""
    qualifier, _, op = operator.rpartition(":")
    if_exists = op.endswith("IfExists")
    op = op[: -len("IfExists")] if if_exists else op
    if op == "Null":
        present = key in context
        return all((str(e).lower() == "true") != present for e in as_list(expected))
    if op not in STRING_OPS:
        raise UnsupportedCondition(f"condition operator {operator} is not evaluated by the local stack")
    test = STRING_OPS[op]
    expected = [str(e) for e in as_list(expected)]
    if key not in context:
        # A missing key: ForAllValues holds vacuously; IfExists holds; anything else fails.
        return qualifier == "ForAllValues" or if_exists
    values = as_list(context[key])
    if op in NEGATED:
        one = lambda v: all(test(e, v) for e in expected)  # noqa: E731
    else:
        one = lambda v: any(test(e, v) for e in expected)  # noqa: E731
    if qualifier == "ForAllValues":
        return all(one(v) for v in values)
    if qualifier == "ForAnyValue":
        return any(one(v) for v in values)
    return len(values) == 1 and one(values[0])


# A request moto knows no resource for: its policies are checked for the action only.
ANY = object()


def statement_applies(statement, action, resource, context):
    if "Action" in statement:
        if not any(matches(a, action, case_sensitive=False) for a in as_list(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(matches(a, action, case_sensitive=False) for a in as_list(statement["NotAction"])):
            return False
    if resource is ANY:
        return True
    if "Resource" in statement:
        if not any(matches(r, resource) for r in as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement:
        if any(matches(r, resource) for r in as_list(statement["NotResource"])):
            return False
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, expected in keys.items():
            expected = substitute(expected, context)
            if expected is None or not condition_holds(operator, key, expected, context):
                return False
    return True


def substitute(expected, context):
    """A condition's values with IAM's policy variables (`${aws:PrincipalTag/k}`) replaced from
    the request's context; None when one names a key the request does not have, which makes
    the condition not match, as in IAM."""
    out = []
    for e in as_list(expected):
        if not isinstance(e, str) or "${" not in e:
            out.append(e)
            continue
        missing = []

        def value(m):
            v = context.get(m.group(1))
            if v is None:
                missing.append(m.group(1))
                return ""
            return as_list(v)[0]

        e = re.sub(r"\$\{([^}]+)\}", value, e)
        if missing:
            return None
        out.append(e)
    return out


def evaluate(documents, action, resource, context):
    """'allow', or why not: 'explicit' (a Deny) or 'implicit' (no Allow)."""
    allowed = False
    for document in documents:
        doc = json.loads(document) if isinstance(document, str) else document
        for statement in as_list(doc.get("Statement", [])):
            if statement_applies(statement, action, resource, context):
                if statement.get("Effect") == "Deny":
                    return "explicit"
                allowed = True
    return "allow" if allowed else "implicit"


def policy_documents(policies):
    """The JSON documents of moto's collected policies (inline strings or managed Policy objects)."""
    out = []
    for p in policies:
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, dict):
            out.append(p["policy_document"])
        else:
            version = next(v for v in p.versions if v.is_default)
            out.append(version.document)
    return out


# ---- What AWS authorizes, request by request ----------------------------------------------------


def arn(service, region, resource):
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{resource}"


def key_value(attribute):
    """A DynamoDB attribute value as a string (the partition key is S, N or B)."""
    for kind in ("S", "N", "B"):
        if kind in (attribute or {}):
            return str(attribute[kind])
    return None


def dynamodb_requests(operation, body, region):
    from moto.dynamodb.models import dynamodb_backends

    backend = dynamodb_backends[ACCOUNT][region]

    def one(action, item):
        table = item.get("TableName", "")
        resource = arn("dynamodb", region, f"table/{table}")
        if item.get("IndexName"):
            resource += f"/index/{item['IndexName']}"
        context = {}
        try:
            hash_key = backend.get_table(table).hash_key_attr
        except Exception:
            hash_key = None
        leading = None
        if hash_key:
            source = item.get("Key") or item.get("Item") or {}
            leading = key_value(source.get(hash_key))
            if leading is None and item.get("KeyConditionExpression"):
                leading = query_partition_key(item, hash_key)
        if leading is not None:
            context["dynamodb:LeadingKeys"] = [leading]
        return (f"dynamodb:{action}", resource, context)

    if operation == "TransactWriteItems":
        kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
        out = []
        for entry in body.get("TransactItems", []):
            for kind, action in kinds.items():
                if kind in entry:
                    out.append(one(action, entry[kind]))
        return out
    if operation == "TransactGetItems":
        return [one("GetItem", entry["Get"]) for entry in body.get("TransactItems", []) if "Get" in entry]
    if operation == "BatchWriteItem":
        out = []
        for table, writes in body.get("RequestItems", {}).items():
            for w in writes:
                item = {"TableName": table, "Item": (w.get("PutRequest") or {}).get("Item"), "Key": (w.get("DeleteRequest") or {}).get("Key")}
                out.append(one("BatchWriteItem", item))
        return out
    if operation == "BatchGetItem":
        out = []
        for table, read in body.get("RequestItems", {}).items():
            for key in read.get("Keys", []):
                out.append(one("BatchGetItem", {"TableName": table, "Key": key}))
        return out
    return [one(operation, body)]


def query_partition_key(item, hash_key):
    """The partition key value a Query's KeyConditionExpression pins (`pk = :v`, `#n = :v`)."""
    names = item.get("ExpressionAttributeNames") or {}
    values = item.get("ExpressionAttributeValues") or {}
    for left, right in re.findall(r"([#\w]+)\s*=\s*(:\w+)", item["KeyConditionExpression"]):
        if names.get(left, left) == hash_key:
            return key_value(values.get(right))
    return None


def requests_of(service, operation, body, region):
    """(action, resource ARN, condition context) for each authorization AWS makes of a call, or
    None where moto's own action check is kept."""
    if service == "dynamodb":
        return dynamodb_requests(operation, body, region)
    if service == "events" and operation == "PutEvents":
        out = []
        for entry in body.get("Entries", []):
            bus = entry.get("EventBusName") or "default"
            resource = bus if bus.startswith("arn:") else arn("events", region, f"event-bus/{bus}")
            context = {"events:source": [entry.get("Source", "")], "events:detail-type": [entry.get("DetailType", "")]}
            out.append(("events:PutEvents", resource, context))
        return out
    if service == "ssm" and operation in ("GetParameter", "GetParameters"):
        names = [body["Name"]] if "Name" in body else body.get("Names", [])
        return [(f"ssm:{operation}", arn("ssm", region, "parameter/" + n.lstrip("/")), {}) for n in names]
    if service == "secretsmanager" and operation in ("GetSecretValue", "DescribeSecret"):
        secret = body.get("SecretId", "")
        if not secret.startswith("arn:"):
            from moto.secretsmanager.models import secretsmanager_backends

            try:
                secret = secretsmanager_backends[ACCOUNT][region].secrets[secret].arn
            except Exception:
                secret = arn("secretsmanager", region, f"secret:{secret}")
        return [(f"secretsmanager:{operation}", secret, {})]
    if service == "ecr" and operation == "DescribeImageScanFindings":
        name = body.get("repositoryName", "")
        return [("ecr:DescribeImageScanFindings", arn("ecr", region, f"repository/{name}"), ecr_resource_tags(region, name))]
    if service == "monitoring" and operation == "DescribeAlarms":
        return [("cloudwatch:DescribeAlarms", arn("cloudwatch", region, f"alarm:{n}"), {}) for n in body.get("AlarmNames") or ["*"]]
    if service == "monitoring" and operation == "ListTagsForResource":
        return [("cloudwatch:ListTagsForResource", body.get("ResourceARN", ""), {})]
    if service == "inspector2" and operation == "ListFindings":
        # ListFindings has no resource-level permissions: IAM checks it on "*".
        return [("inspector2:ListFindings", "*", {})]
    if service == "kms" and operation in ("Decrypt", "GenerateDataKey", "Encrypt"):
        key = body.get("KeyId", "*")
        return [(f"kms:{operation}", key if key.startswith("arn:") else arn("kms", region, f"key/{key}"), {})]
    return None


def ecr_resource_tags(region, name):
    """aws:ResourceTag/<key> of an ECR repository, from its tags in moto's ECR (none when it does
    not exist: the call then fails on the repository, as in AWS)."""
    from moto.ecr.models import ecr_backends

    backend = ecr_backends[ACCOUNT][region]
    repository = backend.repositories.get(name)
    if repository is None:
        return {}
    tags = backend.tagger.list_tags_for_resource(repository.arn).get("tags", [])
    return {f"aws:ResourceTag/{t['Key']}": [t["Value"]] for t in tags}


# ---- The identities ------------------------------------------------------------------------------


def identity_policies(access_key_id=None, role_arn=None, session_token=None):
    """(principal ARN, policy documents) of an access key (a user's, or a role session's), or of a
    role by ARN (the role an EventBridge target assumes)."""
    from moto.iam.access_control import create_access_key
    from moto.iam.models import iam_backends

    if role_arn:
        backend = iam_backends[ACCOUNT]["aws"]
        role = backend.get_role_by_arn(role_arn)
        docs = [role.policies[name] for name in role.policies]
        docs += [p for p in role.managed_policies.values()]
        return role_arn, policy_documents(docs)
    headers = {"X-Amz-Security-Token": session_token} if session_token else {}
    key = create_access_key(account_id=ACCOUNT, partition="aws", access_key_id=access_key_id, headers=headers)
    return key.arn, policy_documents(key.collect_policies())


# Every authorization asked of a role's session or of a role, in order: what each function did,
# for the least-privilege test (GET /_eddo/decisions).
DECISIONS = []


# Resource-based policies by resource ARN (the event bus's EventBusPolicy statements), which the
# provisioner sets: an explicit Deny there refuses a request whatever the identity allows.
RESOURCE_POLICIES = {}


def principal_arn(principal):
    """aws:PrincipalArn: a role session's role (with its path), or the user itself."""
    m = re.fullmatch(r"arn:aws:sts::(\d+):assumed-role/([^/]+)/.*", principal)
    if not m:
        return principal
    from moto.iam.models import iam_backends

    try:
        return iam_backends[ACCOUNT]["aws"].get_role(m.group(2)).arn
    except Exception:
        return f"arn:aws:iam::{m.group(1)}:role/{m.group(2)}"


def principal_tags(arn):
    """aws:PrincipalTag/<key> of a role principal, from its tags in moto's IAM."""
    m = re.fullmatch(r"arn:aws:iam::\d+:role/(?:.*/)?([^/]+)", arn)
    if not m:
        return {}
    from moto.iam.models import iam_backends

    try:
        tags = iam_backends[ACCOUNT]["aws"].get_role(m.group(1)).tags or {}
    except Exception:
        return {}
    # moto keeps a role's tags as a list of {Key, Value} (other resources': a dict by key).
    pairs = tags.values() if isinstance(tags, dict) else tags
    return {f"aws:PrincipalTag/{t['Key']}": [t["Value"]] for t in pairs if isinstance(t, dict) and "Key" in t}


def names_principal(statement, arn):
    """Whether a resource policy statement's Principal covers `arn` ("*", or by ARN or account)."""
    principal = statement.get("Principal")
    if principal == "*":
        return True
    account = arn.split(":")[4] if arn.count(":") >= 5 else ""
    for p in as_list((principal or {}).get("AWS", [])):
        if p in ("*", arn, account, f"arn:aws:iam::{account}:root"):
            return True
    return False


def resource_denies(principal, action, resource, context):
    """The resource policy's explicit Deny that applies to this request, if any (its Sid)."""
    policy = RESOURCE_POLICIES.get(resource)
    if not policy:
        return None
    arn = principal_arn(principal)
    context = dict(context, **{"aws:PrincipalArn": [arn]}, **principal_tags(arn))
    for statement in as_list(policy.get("Statement", [])):
        if statement.get("Effect") == "Deny" and names_principal(statement, arn):
            if statement_applies(statement, action, resource, context):
                return statement.get("Sid") or "a Deny statement"
    return None


def decide(principal, documents, requests):
    """None when every request is allowed, else AWS's message for the first that is not."""
    for action, resource, context in requests:
        shown = "*" if resource is ANY else resource
        if ":role/" in principal or ":assumed-role/" in principal:
            leading = (context or {}).get("dynamodb:LeadingKeys")
            DECISIONS.append({"principal": principal, "action": action, "resource": shown, "leading_keys": leading})
        try:
            verdict = evaluate(documents, action, resource, context)
            denied_by = None if resource is ANY else resource_denies(principal, action, resource, context)
        except UnsupportedCondition as e:
            return f"User: {principal} is not authorized to perform: {action} on resource: {shown} ({e})"
        if denied_by:
            return f"User: {principal} is not authorized to perform: {action} on resource: {shown} because of an explicit deny in a resource-based policy ({denied_by})"
        if verdict != "allow":
            why = "an explicit deny in an identity-based policy" if verdict == "explicit" else f"no identity-based policy allows the {action} action"
            return f"User: {principal} is not authorized to perform: {action} on resource: {shown} because {why}"
    return None


def install_authorization():
    """Replaces moto's check with AWS's: every request signed by a known identity, and each
    authorization AWS makes of it (`requests_of`) allowed by that identity's policies; a call
    `requests_of` does not know is checked for its action only, as moto does."""
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import JsonRESTError, _RESTError
    from moto.iam.access_control import IAMRequest

    def authorize(self, resource="*"):
        # A CBOR request moto answers in JSON (`cbor_call`) is checked as it was signed.
        signed = CBOR_SIGNED.get("request")
        iam_request = IAMRequest(
            account_id=self.current_account,
            method=self.method,
            path=signed["path"] if signed else self.raw_path,
            data=self.data,
            body=signed["body"] if signed else self.raw_body,
            headers=signed["headers"] if signed else self.headers,
            action=self._get_action(),
        )
        iam_request.check_signature()
        # The IAM service prefix is the signing name (dynamodb, events, ecr, sqs, ...).
        service = iam_request._service
        operation = self._get_action()
        json_protocol = bool(self.headers.get("X-Amz-Target")) or "json" in (self.headers.get("Content-Type") or "")
        try:
            # The request's own JSON (moto replaces `body` with its parsed view for some services).
            body = json.loads(self.raw_body) if json_protocol and self.raw_body else {}
        except Exception:
            body = {}
        requests = requests_of(service, operation, body, self.region)
        if requests is None:
            requests = [(f"{service}:{operation}", ANY, {})]
        principal = iam_request._access_key.arn
        refusal = decide(principal, policy_documents(iam_request._access_key.collect_policies()), requests)
        if refusal:
            if json_protocol:
                error = JsonRESTError("AccessDeniedException", refusal)
                error.code = 400
            else:
                error = _RESTError("AccessDenied", refusal)
                error.code = 403
            raise error

    ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = authorize


def bootstrap_administrator():
    """The identity the local stack provisions with: a user allowed everything."""
    from moto.iam.models import iam_backends

    backend = iam_backends[ACCOUNT]["aws"]
    backend.create_user(region_name="us-east-1", user_name="eddo-local-admin")
    backend.put_user_policy(
        "eddo-local-admin",
        "AdministratorAccess",
        json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
    )
    key = backend.create_access_key("eddo-local-admin")
    return {"access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key}


def authorize_endpoint(environ, start_response):
    """POST /_eddo/authorize: the same evaluation for the CodeBuild stand-in and rule targets."""
    request = Request(environ)
    ask = json.loads(request.get_data() or b"{}")
    try:
        principal, documents = identity_policies(ask.get("access_key_id"), ask.get("role_arn"), ask.get("session_token"))
        if ask.get("service"):
            from moto.iam.models import iam_backends

            if not trusts(iam_backends[ACCOUNT]["aws"].get_role_by_arn(principal), ask["service"], ask.get("source_arn")):
                raise PermissionError(f"the trust policy of {principal} does not let {ask['service']} assume it")
    except Exception as e:
        answer = {"allowed": False, "message": f"{type(e).__name__}: {e}"}
    else:
        refusal = decide(principal, documents, [(ask["action"], ask["resource"], ask.get("context") or {})])
        answer = {"allowed": refusal is None, "principal": principal, "message": refusal}
    return Response(json.dumps(answer), content_type="application/json")(environ, start_response)


def trusts(role, service, source_arn=None):
    """Whether a role's trust policy lets `service` (lambda.amazonaws.com, events.amazonaws.com)
    assume it, as the service itself would find; acting for `source_arn` (`aws:SourceArn`: the
    rule, for EventBridge) where it says."""
    document = json.loads(role.assume_role_policy_document)
    context = {"aws:SourceAccount": [ACCOUNT]}
    if source_arn:
        context["aws:SourceArn"] = [source_arn]
    for statement in as_list(document.get("Statement", [])):
        principals = as_list((statement.get("Principal") or {}).get("Service", []))
        if service in principals and statement_applies({k: v for k, v in statement.items() if k != "Principal"}, "sts:AssumeRole", "*", context):
            if statement.get("Effect") == "Deny":
                return False
            if statement.get("Effect") == "Allow":
                return True
    return False


def assume_role_endpoint(environ, start_response):
    """POST /_eddo/assume-role: a role session for a service (Lambda running a function with its
    execution role), only where the role's trust policy lets that service assume it."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    ask = json.loads(Request(environ).get_data() or b"{}")
    try:
        role = iam_backends[ACCOUNT]["aws"].get_role_by_arn(ask["role_arn"])
    except Exception as e:
        return Response(json.dumps({"error": f"no role {ask.get('role_arn')}: {e}"}), status=400)(environ, start_response)
    if not trusts(role, ask["service"]):
        message = f"the trust policy of {role.arn} does not let {ask['service']} assume it"
        return Response(json.dumps({"error": message}), status=403)(environ, start_response)
    session = sts_backends[ACCOUNT]["aws"].assume_role(
        region_name="us-east-1",
        role_session_name=ask["session_name"],
        role_arn=role.arn,
        policy=None,
        duration=43200,
        external_id=None,
    )
    answer = {
        "access_key_id": session.access_key_id,
        "secret_access_key": session.secret_access_key,
        "session_token": session.session_token,
    }
    return Response(json.dumps(answer), content_type="application/json")(environ, start_response)


def resource_policy_endpoint(environ, start_response):
    """POST /_eddo/resource-policy {resource, policy}: the resource's policy (the provisioner sets
    the event bus's from its EventBusPolicy statements)."""
    ask = json.loads(Request(environ).get_data() or b"{}")
    RESOURCE_POLICIES[ask["resource"]] = ask["policy"]
    return Response(json.dumps({"resource": ask["resource"]}), content_type="application/json")(environ, start_response)


def resource_decision_endpoint(environ, start_response):
    """POST /_eddo/resource-decision {principal_arn, action, resource, context}: what the resource
    policy alone says of a request (for tests of the bus policy)."""
    ask = json.loads(Request(environ).get_data() or b"{}")
    try:
        denied_by = resource_denies(ask["principal_arn"], ask["action"], ask["resource"], ask.get("context") or {})
        answer = {"denied": denied_by is not None, "by": denied_by}
    except UnsupportedCondition as e:
        answer = {"denied": True, "by": str(e)}
    return Response(json.dumps(answer), content_type="application/json")(environ, start_response)


def decisions_endpoint(environ, start_response):
    return Response(json.dumps(DECISIONS), content_type="application/json")(environ, start_response)


ENDPOINTS = {
    "/_eddo/authorize": authorize_endpoint,
    "/_eddo/assume-role": assume_role_endpoint,
    "/_eddo/decisions": decisions_endpoint,
    "/_eddo/resource-policy": resource_policy_endpoint,
    "/_eddo/resource-decision": resource_decision_endpoint,
}


def transform_input(template, paths, event):
    """An InputTransformer's output for `event`, as EventBridge makes it (see the docstring)."""
    from jsonpath_ng.ext import parse

    values = {}
    for name, path in (paths or {}).items():
        found = parse(path).find(event)
        values[name] = found[0].value if found else None
    values.setdefault("aws.events.event.json", event)
    values.setdefault("aws.events.event.ingestion-time", event.get("ingestion-time"))
    if not template.lstrip().startswith(("{", "[")):
        # A text template: each value's text where its placeholder is.
        for name, v in values.items():
            template = template.replace(f"<{name}>", v if isinstance(v, str) else json.dumps(v))
        return template
    out, quoted, i = [], False, 0
    while i < len(template):
        c = template[i]
        if c == "\\" and quoted:
            out.append(template[i:i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        if c == "<":
            end = template.find(">", i)
            name = template[i + 1:end] if end > 0 else None
            if name in values:
                v = values[name]
                if quoted:
                    text = v if isinstance(v, str) else json.dumps(v)
                    out.append(json.dumps(text)[1:-1])
                else:
                    out.append("null" if v is None else json.dumps(v))
                i = end + 1
                continue
        out.append(c)
        i += 1
    text = "".join(out)
    try:
        return json.loads(text)
    except ValueError:
        return text


def install_input_transformer():
    from moto.events import utils

    utils.EventTemplateParser.parse = staticmethod(
        lambda input_template, input_paths_map, event: transform_input(
            input_template
            or utils.EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE,
            input_paths_map or utils.EventTemplateParser.DEFAULT_EVENT_INPUT_PATHS_MAP,
            event,
        )
    )


# ---- Smithy RPC v2 CBOR ---------------------------------------------------------------------------

# The AWS SDKs speak CloudWatch in Smithy RPC v2 CBOR (`POST /service/<service>/operation/<op>`),
# which moto does not parse; it answers the same operations in AWS JSON 1.0. `cbor_call` puts one
# into the other and back, the signature checked on the request as it was signed.
CBOR_PATH = re.compile(r"/service/([A-Za-z0-9_]+)/operation/([A-Za-z0-9_]+)")
CBOR_SIGNED = {}


def json_of(value):
    """A CBOR request's value as JSON 1.0 carries it: timestamps as epoch seconds."""
    import datetime

    if isinstance(value, dict):
        return {k: json_of(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_of(v) for v in value]
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    return value


def is_timestamp(key):
    return key.endswith("Timestamp") or key in ("StartDate", "EndDate", "Timestamps")


def cbor_of(value, key=""):
    """A JSON 1.0 answer as CBOR carries it: timestamps (epoch seconds, or the ISO text moto
    sometimes writes) as tag 1."""
    import cbor2
    import datetime

    if isinstance(value, dict):
        return {k: cbor_of(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [cbor_of(v, key) for v in value]
    if is_timestamp(key) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return cbor2.CBORTag(1, float(value))
    if is_timestamp(key) and isinstance(value, str):
        try:
            at = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if at.tzinfo is None:
                at = at.replace(tzinfo=datetime.timezone.utc)
            return cbor2.CBORTag(1, at.timestamp())
        except ValueError:
            return value
    return value


def cbor_call(app, environ, start_response, service, operation):
    import cbor2

    raw = environ["wsgi.input"].read()
    request = cbor2.loads(raw) if raw else {}
    body = json.dumps(json_of(request)).encode()
    headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
    for k in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(k):
            headers[k.replace("_", "-").title()] = environ[k]
    env = dict(environ)
    env.update(
        {
            "PATH_INFO": "/",
            "CONTENT_TYPE": "application/x-amz-json-1.0",
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_X_AMZ_TARGET": f"{service}.{operation}",
            "wsgi.input": io.BytesIO(body),
        }
    )
    captured = {}

    def capture(status, response_headers, exc_info=None):
        captured["status"] = status

    CBOR_SIGNED["request"] = {"path": environ["PATH_INFO"], "body": raw, "headers": headers}
    try:
        answer = b"".join(app(env, capture))
    finally:
        CBOR_SIGNED.pop("request", None)
    try:
        value = json.loads(answer) if answer.strip() else {}
    except ValueError:
        value = {"__type": "InternalFailure", "message": answer.decode(errors="replace")[:500]}
    out = cbor2.dumps(cbor_of(value))
    start_response(
        captured.get("status", "500 INTERNAL SERVER ERROR"),
        [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor"), ("Content-Length", str(len(out)))],
    )
    return [out]


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    # The server binds its own port (0: any free one) and says which: no other process can take
    # it between a caller choosing it and this server binding it.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(128)
    port = listener.getsockname()[1]
    os.environ["MOTO_PORT"] = str(port)
    install_input_transformer()
    app = DomainDispatcherApplication(create_backend_app)
    started = {"port": port}
    if IAM:
        install_authorization()
        started.update(bootstrap_administrator())
    lock = threading.Lock()

    def serial(environ, start_response):
        # The body is read before the lock is taken: a slow or vanished client cannot hold up
        # every other request.
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length))
        with lock:
            endpoint = ENDPOINTS.get(environ.get("PATH_INFO"))
            if endpoint is not None:
                return list(endpoint(environ, start_response))
            cbor = CBOR_PATH.fullmatch(environ.get("PATH_INFO") or "")
            if cbor:
                return cbor_call(app, environ, start_response, *cbor.groups())
            # The whole body is produced under the lock, not just the first chunk.
            return list(app(environ, start_response))

    server = make_server(host, port, serial, threaded=True, request_handler=MotoRequestHandler, fd=listener.fileno())
    print(json.dumps(started), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
