//! Connections and API destinations: created on the emulator as the template declares them
//! (moto checks their properties but delivers nothing), and kept as EventBridge keeps them, with
//! the connection's authorization, for the dispatcher to deliver with.

use std::collections::{BTreeMap, HashMap};

use aws_config::SdkConfig;
use serde_json::Value;

use crate::template::{ACCOUNT, Names, REGION, Template, property};
use crate::{LocalError, aws};

/// An API destination as EventBridge keeps it: where it sends, how, and the header its
/// connection authorizes with (EventBridge holds the connection's secret; so does the local
/// stack).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiDestinationDef {
    pub arn: String,
    pub endpoint: String,
    pub method: String,
    /// The connection's `API_KEY` header, or `Authorization: Basic ...` for `BASIC`.
    pub authorization: (String, String),
}

/// Every `AWS::Events::Connection` and `AWS::Events::ApiDestination`: created on the emulator
/// (which checks their properties), named for `Ref` and `Fn::GetAtt`; by the destination's ARN.
pub(super) async fn api_destinations(
    sdk: &SdkConfig,
    template: &Template,
    names: &mut Names,
    prefix: &str,
) -> Result<BTreeMap<String, ApiDestinationDef>, LocalError> {
    use aws_sdk_eventbridge::types::{
        ApiDestinationHttpMethod, ConnectionAuthorizationType,
        CreateConnectionApiKeyAuthRequestParameters, CreateConnectionAuthRequestParameters,
        CreateConnectionBasicAuthRequestParameters,
    };
    let eb = aws_sdk_eventbridge::Client::new(sdk);
    let mut authorizations = HashMap::new();
    for (id, r) in template.of_type("AWS::Events::Connection") {
        let kind = property(names, id, r, "AuthorizationType")?;
        let auth = property(names, id, r, "AuthParameters")?;
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let (params, header) = match kind.as_str() {
            Some("API_KEY") => {
                let key = &auth["ApiKeyAuthParameters"];
                let (name, value) = (text(&key["ApiKeyName"]), text(&key["ApiKeyValue"]));
                let p = CreateConnectionApiKeyAuthRequestParameters::builder()
                    .api_key_name(&name)
                    .api_key_value(&value)
                    .build()
                    .map_err(|e| LocalError::Setup(format!("connection {id}: {e}")))?;
                (
                    CreateConnectionAuthRequestParameters::builder()
                        .api_key_auth_parameters(p)
                        .build(),
                    (name, value),
                )
            }
            Some("BASIC") => {
                use base64::Engine as _;
                let basic = &auth["BasicAuthParameters"];
                let (user, password) = (text(&basic["Username"]), text(&basic["Password"]));
                let p = CreateConnectionBasicAuthRequestParameters::builder()
                    .username(&user)
                    .password(&password)
                    .build()
                    .map_err(|e| LocalError::Setup(format!("connection {id}: {e}")))?;
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                (
                    CreateConnectionAuthRequestParameters::builder()
                        .basic_auth_parameters(p)
                        .build(),
                    ("Authorization".to_string(), format!("Basic {encoded}")),
                )
            }
            other => {
                return Err(LocalError::Setup(format!(
                    "connection {id}: the local stack delivers with API_KEY or BASIC authorization, not {other:?}"
                )));
            }
        };
        let name = format!("{prefix}-{id}");
        let out = eb
            .create_connection()
            .name(&name)
            .authorization_type(ConnectionAuthorizationType::from(
                kind.as_str().unwrap_or_default(),
            ))
            .auth_parameters(params)
            .send()
            .await
            .map_err(|e| aws("CreateConnection", e))?;
        let arn = out.connection_arn().unwrap_or_default().to_string();
        names.set_ref(id, &name);
        names.set_attr(id, "Arn", &arn);
        names.set_attr(id, "ArnForPolicy", &arn);
        names.set_attr(
            id,
            "SecretArn",
            format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:events!connection/{name}"),
        );
        authorizations.insert(arn, header);
    }
    let mut out = BTreeMap::new();
    for (id, r) in template.of_type("AWS::Events::ApiDestination") {
        let connection = property(names, id, r, "ConnectionArn")?;
        let endpoint = property(names, id, r, "InvocationEndpoint")?;
        let method = property(names, id, r, "HttpMethod")?;
        let (Some(connection), Some(endpoint), Some(method)) =
            (connection.as_str(), endpoint.as_str(), method.as_str())
        else {
            return Err(LocalError::Setup(format!(
                "API destination {id} needs ConnectionArn, InvocationEndpoint and HttpMethod"
            )));
        };
        let authorization = authorizations.get(connection).cloned().ok_or_else(|| {
            LocalError::Setup(format!(
                "API destination {id}: no connection of the template is {connection}"
            ))
        })?;
        let name = format!("{prefix}-{id}");
        let created = eb
            .create_api_destination()
            .name(&name)
            .connection_arn(connection)
            .invocation_endpoint(endpoint)
            .http_method(ApiDestinationHttpMethod::from(method))
            .send()
            .await
            .map_err(|e| aws("CreateApiDestination", e))?;
        let arn = created
            .api_destination_arn()
            .unwrap_or_default()
            .to_string();
        names.set_ref(id, &name);
        names.set_attr(id, "Arn", &arn);
        names.set_attr(id, "ArnForPolicy", &arn);
        out.insert(
            arn.clone(),
            ApiDestinationDef {
                arn,
                endpoint: endpoint.to_string(),
                method: method.to_string(),
                authorization,
            },
        );
    }
    Ok(out)
}
