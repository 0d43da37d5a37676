"""The example app (infra/cdk/bin/eddo.ts) in Python, as a Python user writes it against the
packaged construct (`pip install eddo-cdk`): the same settings from the same CDK context keys,
so that it synthesizes the same template (infra/scripts/cdk-consumer.sh compares them)."""

import os

import aws_cdk as cdk
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_ssm as ssm
from eddo_cdk import Eddo, FunctionsFrom, SbtGeneration, SbtOptions

app = cdk.App()


def setting(name: str, fallback: str) -> str:
    value = app.node.try_get_context(f"eddo:{name}")
    return fallback if value is None else str(value)


def listed(value: str) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()]


def optional(value: str) -> str | None:
    return None if value == "" else value


def project(id: str, name: str) -> codebuild.IProject | None:
    """The project of that name (made elsewhere), or none for ""."""
    return None if name == "" else codebuild.Project.from_project_name(stack, f"{id}Project", name)


stack = cdk.Stack(
    app,
    setting("stackName", "Eddo"),
    description="eddo: event-driven delivery operations on Amazon EventBridge (CDK).",
)
sbt_source = setting("sbtControlPlaneEventSource", "sbt.control.plane")
sbt_generation = setting("sbtGeneration", "current")
if sbt_generation not in ("current", "legacy"):
    raise ValueError(f"eddo:sbtGeneration: {sbt_generation} is not current or legacy")
functions_from = setting("functionsFrom", "")
if functions_from not in ("", "prebuilt", "source"):
    raise ValueError(f"eddo:functionsFrom: {functions_from} is not prebuilt or source")
eddo = Eddo(
    stack,
    "Eddo",
    functions_from=None if functions_from == "" else FunctionsFrom(functions_from),
    policy_file=os.path.abspath(setting("policyFile", "policy/eddo.yaml")),
    event_bus_name=optional(setting("eventBusName", "")),
    policy_parameter_name=optional(setting("policyParameterName", "")),
    # The example policy is 6 KB: past a Standard parameter.
    policy_parameter_tier=ssm.ParameterTier.STANDARD
    if setting("policyParameterTier", "Advanced") == "Standard"
    else ssm.ParameterTier.ADVANCED,
    build_project=project("Build", setting("buildProject", "eddo-build")),
    sast_project=project("Sast", setting("sastProject", "eddo-sast")),
    tenant_request_sources=listed(setting("tenantRequestSources", "com.example.control-plane")),
    tenant_request_sender_role_arns=listed(setting("tenantRequestSenderRoleArns", "")),
    sbt=None
    if sbt_source == ""
    else SbtOptions(
        control_plane_event_source=sbt_source,
        generation=SbtGeneration.LEGACY if sbt_generation == "legacy" else SbtGeneration.CURRENT,
    ),
)

outputs = {
    "WebhookBaseUrl": (eddo.webhook_url.url, "The webhook function URL; append github, gitlab, standard or signals/<sender>."),
    "GitHubWebhookUrl": (f"{eddo.webhook_url.url}github", "Payload URL for a GitHub webhook (content type application/json)."),
    "GitLabWebhookUrl": (f"{eddo.webhook_url.url}gitlab", "URL for a GitLab webhook."),
    "StandardWebhooksUrl": (f"{eddo.webhook_url.url}standard", "URL for any Standard Webhooks sender."),
    "WebhookSecretArn": (
        eddo.webhook_secret.secret_arn,
        "Put the provider secrets here (JSON keys github, gitlab, gitlab_signing, standard_webhooks, senders).",
    ),
    "EventBusArn": (eddo.event_bus.event_bus_arn, None),
    "EventBusName": (eddo.event_bus.event_bus_name, None),
    "StateTableName": (eddo.table.table_name, None),
    "DeadLetterQueueUrl": (eddo.dead_letter_queue.queue_url, None),
    "AlarmRollbackFunctionArn": (
        eddo.alarm_rollback_function.function_arn,
        "Add it as an alarm's Lambda action to invoke alarm-rollback directly.",
    ),
}
if eddo.policy_parameter is not None:
    outputs["PolicyParameterName"] = (
        eddo.policy_parameter.parameter_name,
        "The SSM parameter the functions read the policy from (the stack owns it).",
    )
for name, (value, description) in outputs.items():
    cdk.CfnOutput(stack, name, value=value, description=description)

app.synth()
