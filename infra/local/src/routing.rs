//! Which corpus events each rule of the template receives, routed by moto (moto does not
//! implement TestEventPattern, so routing real events is how a pattern is proven locally).
//!
//! The corpus is what the bus really carries: every GitHub payload in `corpus/github/` as the
//! webhook function publishes it (signed, verified and normalised by its own code), and every
//! EventBridge-shaped AWS sample in `corpus/aws/` on the default bus, where AWS puts them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use eddo::config::Env;
use eddo_webhook::normalise::Normalised;
use eddo_webhook::secrets::{SecretSet, WebhookSecrets};
use eddo_webhook::{Config, accept, outgoing, precheck};
use serde_json::Value;

use crate::fixtures::github_delivery;
use crate::stack::{LOCAL_GITHUB_SECRET, Stack};
use crate::{LocalError, aws};

/// One event of the corpus as it arrives on a bus.
#[derive(Debug, Clone)]
pub struct CorpusEvent {
    /// Its file under the corpus, e.g. `github/push/with-new-branch.payload.json`.
    pub name: String,
    /// `default` for AWS events; the eddo bus for eddo's.
    pub on_default_bus: bool,
    pub source: String,
    pub detail_type: String,
    pub detail: String,
    pub resources: Vec<String>,
}

fn read(path: &Path) -> Result<String, LocalError> {
    std::fs::read_to_string(path)
        .map_err(|e| LocalError::Setup(format!("corpus {}: {e}", path.display())))
}

fn sorted_entries(dir: &Path) -> Result<Vec<std::path::PathBuf>, LocalError> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| LocalError::Setup(format!("corpus {}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    out.sort();
    Ok(out)
}

/// Every event of the corpus at `root` that reaches a bus.
pub fn corpus_events(root: &Path) -> Result<Vec<CorpusEvent>, LocalError> {
    let config = Config::from_env(&Env::from_pairs([
        ("EDDO_EVENT_BUS_NAME", "eddo"),
        ("EDDO_TABLE_NAME", "eddo-state"),
        ("EDDO_WEBHOOK_SECRET_ARN", "local"),
    ]))
    .map_err(|e| LocalError::Setup(e.to_string()))?;
    let secrets = SecretSet {
        versions: vec![WebhookSecrets {
            github: Some(LOCAL_GITHUB_SECRET.into()),
            ..WebhookSecrets::default()
        }],
    };
    let mut out = Vec::new();
    for dir in sorted_entries(&root.join("github"))? {
        let event = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        for file in sorted_entries(&dir)? {
            let body = read(&file)?;
            let name = format!(
                "github/{event}/{}",
                file.file_name().unwrap_or_default().to_string_lossy()
            );
            let req = github_delivery(LOCAL_GITHUB_SECRET, &event, &name, &body);
            let published = precheck(&req, config.max_body_bytes)
                .and_then(|(provider, bytes)| {
                    accept(provider, &req.headers, &bytes, &secrets, &config, 0)
                })
                .map_err(|reply| {
                    LocalError::Setup(format!("{name}: the webhook refused it: {:?}", reply.body))
                })?;
            if let Normalised::Publish(detail_type, git) = published.outcome {
                let entry = outgoing(detail_type, *git, config.common.max_entry_bytes)
                    .map_err(|reply| LocalError::Setup(format!("{name}: {:?}", reply.body)))?;
                out.push(CorpusEvent {
                    name,
                    on_default_bus: false,
                    source: entry.source.to_string(),
                    detail_type: entry.detail_type.to_string(),
                    detail: entry.detail,
                    resources: Vec::new(),
                });
            }
        }
    }
    for file in sorted_entries(&root.join("aws"))? {
        let v: Value = serde_json::from_str(&read(&file)?)
            .map_err(|e| LocalError::Setup(format!("corpus {}: {e}", file.display())))?;
        let (Some(source), Some(detail_type)) = (v["source"].as_str(), v["detail-type"].as_str())
        else {
            continue; // Not an EventBridge event (a function URL request, an alarm action).
        };
        out.push(CorpusEvent {
            name: format!(
                "aws/{}",
                file.file_name().unwrap_or_default().to_string_lossy()
            ),
            on_default_bus: true,
            source: source.into(),
            detail_type: detail_type.into(),
            detail: v["detail"].to_string(),
            resources: v["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str().map(str::to_string))
                .collect(),
        });
    }
    Ok(out)
}

/// eddo's example events for the contracts other tools put on the bus (`infra/examples/events`):
/// part of what the bus carries, so the rules for them are proven too.
pub fn example_events(dir: &Path) -> Result<Vec<CorpusEvent>, LocalError> {
    let mut out = Vec::new();
    for file in sorted_entries(dir)? {
        let v: Value = serde_json::from_str(&read(&file)?)
            .map_err(|e| LocalError::Setup(format!("{}: {e}", file.display())))?;
        out.push(CorpusEvent {
            name: format!(
                "examples/{}",
                file.file_name().unwrap_or_default().to_string_lossy()
            ),
            on_default_bus: v["source"].as_str().is_some_and(|s| s.starts_with("aws.")),
            source: v["source"].as_str().unwrap_or_default().into(),
            detail_type: v["detail-type"].as_str().unwrap_or_default().into(),
            detail: v["detail"].to_string(),
            resources: Vec::new(),
        });
    }
    Ok(out)
}

/// Puts every event on its bus and returns, for each rule of the stack, the names of the events
/// it received. A rule that receives none of them is an error naming it and its pattern: a
/// pattern that matches nothing real is almost always a mistake.
pub async fn route(
    stack: &Stack,
    events: &[CorpusEvent],
) -> Result<BTreeMap<String, BTreeSet<String>>, LocalError> {
    // Each rule's `matched` queue gets the events untransformed, so every delivery names its
    // event by id whatever the real target's input transformer does.
    let patterns: BTreeMap<&str, &str> = stack
        .routes
        .iter()
        .filter(|r| r.schedule.is_none())
        .map(|r| (r.rule.as_str(), r.pattern.as_str()))
        .collect();

    // Each event is put by whom the bus lets put its source (eddo's by its function, the tools'
    // by the signal sender); the default bus takes AWS's samples from the administrator.
    let mut by_sender: BTreeMap<&str, Vec<&CorpusEvent>> = BTreeMap::new();
    for e in events {
        let sender = if e.on_default_bus {
            ""
        } else {
            e.source.as_str()
        };
        by_sender.entry(sender).or_default().push(e);
    }
    let mut names = HashMap::new();
    for (sender, events) in by_sender {
        let sdk = if sender.is_empty() {
            stack.sdk.clone()
        } else {
            stack.sdk_for_source(sender).await?
        };
        let eb = aws_sdk_eventbridge::Client::new(&sdk);
        for chunk in events.chunks(10) {
            let mut put = eb.put_events();
            for e in chunk {
                put = put.entries(
                    PutEventsRequestEntry::builder()
                        .event_bus_name(if e.on_default_bus {
                            "default"
                        } else {
                            &stack.bus
                        })
                        .source(&e.source)
                        .detail_type(&e.detail_type)
                        .detail(&e.detail)
                        .set_resources(Some(e.resources.clone()))
                        .build(),
                );
            }
            let out = match put.send().await {
                Ok(out) => out,
                // The bus refuses a source nobody may put with these settings (the legacy
                // control plane's, when the stack speaks the current sbt-aws): no rule can
                // receive it, which the expectations say.
                Err(e)
                    if aws_sdk_eventbridge::error::ProvideErrorMetadata::code(&e)
                        == Some("AccessDeniedException") =>
                {
                    continue;
                }
                Err(e) => return Err(aws("PutEvents", e)),
            };
            for (entry, e) in out.entries().iter().zip(chunk) {
                let id = entry.event_id().ok_or_else(|| {
                    LocalError::Aws(format!(
                        "PutEvents refused {}: {}",
                        e.name,
                        entry.error_message().unwrap_or("no reason given")
                    ))
                })?;
                names.insert(id.to_string(), e.name.clone());
            }
        }
    }

    let mut routed = BTreeMap::new();
    let mut silent = Vec::new();
    for (rule, queue) in &stack.matched {
        let pattern = patterns.get(rule.as_str()).copied().unwrap_or_default();
        let received: BTreeSet<String> = stack
            .drain(queue, Duration::from_millis(300))
            .await?
            .iter()
            .map(|ev| {
                let id = ev["id"].as_str().unwrap_or_default();
                names
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| format!("(an event not from the corpus: {id})"))
            })
            .collect();
        if received.is_empty() {
            silent.push(format!("{rule} (pattern {pattern})"));
        }
        routed.insert(rule.clone(), received);
    }
    if !silent.is_empty() {
        return Err(LocalError::Setup(format!(
            "these rules match none of the {} corpus events, so their patterns are unproven and probably wrong: {}",
            events.len(),
            silent.join("; ")
        )));
    }
    Ok(routed)
}
