//! moto server, the AWS API emulator, as a child process on a free loopback port, with IAM
//! enforced (`infra/local/moto_server.py`): every call is signed and must be allowed by its
//! caller's policies. The local stack provisions as the administrator moto creates at start.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_eventbridge::config::Credentials;

use crate::LocalError;

/// The project's root: two levels above this crate.
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python of the project's virtualenv (`make setup` creates it), or `EDDO_PYTHON`: the one
/// with moto installed.
pub(crate) fn python_path() -> PathBuf {
    std::env::var_os("EDDO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| project_root().join(".venv/bin/python"))
}

/// An access key of the emulator's IAM (the administrator's, or a role session's).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    #[serde(default)]
    pub session_token: Option<String>,
}

impl AccessKey {
    pub fn credentials(&self) -> Credentials {
        Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            self.session_token.clone(),
            None,
            "eddo-local",
        )
    }
}

/// What moto says when it serves: its port and its administrator's access key.
#[derive(serde::Deserialize)]
struct Started {
    port: u16,
    #[serde(flatten)]
    admin: AccessKey,
}

/// A running moto server; dropping it stops the process.
pub struct Moto {
    child: Child,
    addr: SocketAddr,
    admin: AccessKey,
}

impl Moto {
    pub fn start() -> Result<Moto, LocalError> {
        let path = python_path();
        if !path.exists() {
            return Err(LocalError::Setup(format!(
                "{} not found: run `make setup` (or set EDDO_PYTHON to a Python with moto[server])",
                path.display()
            )));
        }
        // moto's own server, its requests served one at a time so conditional writes are
        // atomic, as in DynamoDB, and IAM enforced as in AWS (see the script).
        let script = project_root().join("infra/local/moto_server.py");
        // moto binds a free port itself and says which, with the administrator's access key,
        // in its first line.
        let mut child = Command::new(&path)
            .arg(&script)
            .args(["127.0.0.1", "0"])
            .env("EDDO_IAM", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| LocalError::Setup(format!("could not start {}: {e}", path.display())))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            lines.for_each(drop);
        });
        let started: Result<Started, LocalError> = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(Ok(line))) => serde_json::from_str(&line).map_err(|e| {
                LocalError::Setup(format!(
                    "moto server did not say where it serves ({e}): {line}"
                ))
            }),
            _ => Err(LocalError::Setup(
                "moto server exited or printed nothing at start".into(),
            )),
        };
        let Started { port, admin } = match started {
            Ok(s) => s,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut moto = Moto { child, addr, admin };
        moto.wait_ready(Duration::from_secs(60))?;
        Ok(moto)
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<(), LocalError> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(LocalError::Setup(format!(
                    "moto server exited at start ({status})"
                )));
            }
            if http_get(self.addr, "/moto-api/data.json").is_some_and(|status| status < 500) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(LocalError::Setup(format!(
            "moto server did not answer on {} within {limit:?}",
            self.addr
        )))
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The administrator's access key: allowed everything, as the identity that deploys.
    pub fn admin(&self) -> &AccessKey {
        &self.admin
    }

    /// SDK configuration pointed at this server, as the administrator.
    pub async fn sdk_config(&self) -> SdkConfig {
        sdk_config_for(&self.endpoint(), &self.admin).await
    }
}

/// SDK configuration for an emulator at `endpoint`, signing as `key`.
pub async fn sdk_config_for(endpoint: &str, key: &AccessKey) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(key.credentials())
        .endpoint_url(endpoint)
        .load()
        .await
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// POSTs `body` to one of moto's own configuration endpoints (`/moto-api/...`) of the server
/// `sdk` points at: results that moto answers with where it has no real service behind it.
pub async fn api_post(
    sdk: &SdkConfig,
    path: &str,
    body: &serde_json::Value,
) -> Result<(), LocalError> {
    let endpoint = sdk
        .endpoint_url()
        .ok_or_else(|| LocalError::Setup("no emulator endpoint".into()))?;
    let addr: SocketAddr = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .map_err(|e| LocalError::Setup(format!("emulator endpoint {endpoint}: {e}")))?;
    let (path, body) = (path.to_string(), body.to_string());
    let (status, text) = tokio::task::spawn_blocking(move || {
        crate::url::post(
            addr,
            &path,
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
    })
    .await
    .map_err(|e| LocalError::Setup(e.to_string()))?
    .map_err(|e| LocalError::Aws(format!("moto API: {e}")))?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(LocalError::Aws(format!("moto API: {status} {text}")))
    }
}

/// The status code of `GET path`, or `None` if nothing answered.
fn http_get(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
