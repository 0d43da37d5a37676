//! When an alarm rolls a service back, and how often.

use super::*;

/// Whether alarm-rollback rolls back, or only decides and reports (`Rollback Would Start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RollbackMode {
    #[default]
    Enforce,
    DryRun,
}

/// When and how often a service is rolled back automatically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    /// Alarms that roll it back, besides those tagged `eddo:service`: names, or ARNs (starting
    /// `arn:`), `*` matching any run of characters.
    pub alarms: Vec<String>,
    /// Prometheus Alertmanager or Grafana alerts that roll it back: those of a sender whose
    /// labels include every label of one of these (`/alertmanager/<sender>`).
    pub alerts: Vec<AlertMatch>,
    /// How long after a deployment goes live an alarm still rolls it back.
    pub bake_minutes: u32,
    /// The least time between two automatic rollbacks of the service.
    pub cooldown_minutes: u32,
    /// At most this many automatic rollbacks in `window_hours`; then a person decides.
    pub max_rollbacks: u32,
    pub window_hours: u32,
    /// Whether an alarm going to INSUFFICIENT_DATA counts (missing data from a dead service).
    pub on_insufficient_data: bool,
    /// How long a rollback holds the service's deployments if its build never reports.
    pub hold_minutes: u32,
    pub mode: RollbackMode,
}

/// The alerts of one sender that name a service: every label here, with this value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertMatch {
    pub sender: SenderName,
    pub labels: BTreeMap<String, String>,
}

impl AlertMatch {
    /// Whether an alert from `sender` with `labels` is one of these.
    pub fn matches(&self, sender: &str, labels: &BTreeMap<String, String>) -> bool {
        self.sender.as_str() == sender
            && self
                .labels
                .iter()
                .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
    }
}

/// `prometheus alerts with job=hello-world, severity=page`: for people.
impl std::fmt::Display for AlertMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<String> = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(f, "{} alerts with {}", self.sender, labels.join(", "))
    }
}

/// A Prometheus label name (`[a-zA-Z_][a-zA-Z0-9_]*`).
fn label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RollbackDoc {
    #[serde(default)]
    alarms: Vec<String>,
    #[serde(default)]
    alerts: Vec<AlertMatch>,
    bake_minutes: u32,
    #[serde(default = "default_cooldown")]
    cooldown_minutes: u32,
    #[serde(default = "default_max_rollbacks")]
    max_rollbacks: u32,
    #[serde(default = "default_window")]
    window_hours: u32,
    #[serde(default)]
    on_insufficient_data: bool,
    #[serde(default = "default_hold")]
    hold_minutes: u32,
    #[serde(default)]
    mode: RollbackMode,
}

fn default_cooldown() -> u32 {
    30
}

fn default_max_rollbacks() -> u32 {
    3
}

fn default_window() -> u32 {
    24
}

fn default_hold() -> u32 {
    60
}

/// The rollback section, checked; each mistake goes to `bad` (its field, why) and makes it `None`.
pub(super) fn rollback(r: RollbackDoc, bad: &mut dyn FnMut(String, String)) -> Option<Rollback> {
    let mut ok = true;
    let mut range = |field: &str, v: u32, lo: u32, hi: u32, unit: &str| {
        if !(lo..=hi).contains(&v) {
            ok = false;
            bad(
                format!("rollback.{field}"),
                format!("{v} is not between {lo} and {hi} {unit}"),
            );
        }
        v
    };
    let rollback = Rollback {
        // A week at most: past that an alarm is about something else than the release.
        bake_minutes: range("bake_minutes", r.bake_minutes, 1, 10_080, "minutes"),
        cooldown_minutes: range("cooldown_minutes", r.cooldown_minutes, 0, 1_440, "minutes"),
        max_rollbacks: range("max_rollbacks", r.max_rollbacks, 1, 100, "rollbacks"),
        window_hours: range("window_hours", r.window_hours, 1, 720, "hours"),
        // CodeBuild's longest build is 8 hours.
        hold_minutes: range("hold_minutes", r.hold_minutes, 5, 480, "minutes"),
        alarms: r.alarms,
        alerts: r.alerts,
        on_insufficient_data: r.on_insufficient_data,
        mode: r.mode,
    };
    for (i, a) in rollback.alarms.iter().enumerate() {
        if a.trim().is_empty() || a.len() > 1600 {
            ok = false;
            bad(
                format!("rollback.alarms[{i}]"),
                "an alarm name or ARN pattern, 1 to 1600 characters".into(),
            );
        }
    }
    for (i, a) in rollback.alerts.iter().enumerate() {
        // No labels would take every alert of the sender, whatever it is about.
        if a.labels.is_empty() {
            ok = false;
            bad(
                format!("rollback.alerts[{i}].labels"),
                "at least one label (service, job, namespace...) that says the alert is this service's".into(),
            );
        }
        for (k, v) in &a.labels {
            if !label_name(k) || v.is_empty() {
                ok = false;
                bad(
                    format!("rollback.alerts[{i}].labels.{k}"),
                    "a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*) with a value".into(),
                );
            }
        }
    }
    ok.then_some(rollback)
}
