//! What the routes of other tools' senders share (`/signals/`, `/cdevents/`, `/alertmanager/`):
//! the sender a path names, the token a sender proves itself with, and the keys its events are
//! published once under.

use eddo::names::SenderName;
use http::HeaderMap;

use crate::secrets::SecretSet;
use crate::signature::{self, SignatureError};
use crate::{Reply, header};

/// The sender a path names under a sender's route prefix, if it is one: `Err` (404) for a
/// malformed name.
pub(crate) fn route(path: &str, prefix: &str) -> Option<Result<SenderName, Reply>> {
    let name = path.trim_end_matches('/').strip_prefix(prefix)?;
    Some(SenderName::parse(name).map_err(|_| Reply::error(404, "no such sender route")))
}

/// The one answer to a sender that did not prove itself: the same whether the sender is unknown
/// or its proof wrong.
pub(crate) fn unauthenticated() -> Reply {
    Reply::error(401, "the sender could not be authenticated")
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    header(headers, "authorization").and_then(|v| {
        v.split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
    })
}

/// `given` is one of the sender's tokens (`tokens.<sender>`), or the delivery is refused (on
/// route `route`, for the logs).
pub(crate) fn token(
    sender: &SenderName,
    secrets: &SecretSet,
    given: &str,
    route: &'static str,
) -> Result<(), Reply> {
    signature::verify_token(&secrets.token(sender.as_str()), given).map_err(|e| {
        if e == SignatureError::NoSecret {
            tracing::warn!(%sender, route, "no usable token for this sender: delivery refused");
        } else {
            tracing::warn!(%sender, route, "the sender's token rejected");
        }
        unauthenticated()
    })
}

/// SHA-256 of `parts`, each followed by a 0 byte but the last: what names an event of a sender's
/// (a CDEvent's source and id, an alert's fingerprint, status and start) whatever their lengths.
pub(crate) fn digest(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hash.update([0]);
        }
        hash.update(part);
    }
    hash.finalize().into()
}

/// The key an event of `sender` named by `parts` is published once under.
pub(crate) fn once_key(sender: &SenderName, parts: &[&[u8]]) -> String {
    format!("{sender}#sha256:{}", hex::encode(digest(parts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key names the same event across versions: a redelivery after an upgrade stays a
    /// duplicate. Pinned to SHA-256 of the parts joined by a 0 byte, as first published.
    #[test]
    fn a_once_key_is_the_digest_of_its_parts_joined_by_a_zero_byte() {
        let tekton = SenderName::parse("tekton").unwrap();
        assert_eq!(
            once_key(&tekton, &[b"/tekton/pipelines", b"run-1"]),
            "tekton#sha256:cf9cbdbde96a42ae09f2684612f83f73a900fb3efccc17922d2557f88335a79c"
        );
    }
}
