//! Is this delivery from who it says? Pure functions over the raw body bytes and the headers.
//!
//! Every comparison of secret-derived bytes is constant-time; lengths and formats are checked
//! before any MAC is computed, and no weaker scheme (GitHub's SHA-1 header) is ever a fallback.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// How far a Standard Webhooks timestamp may be from now, by the spec's recommendation.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no secret is configured for this provider: every delivery is refused")]
    NoSecret,
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("only the SHA-1 X-Hub-Signature header was sent; eddo requires X-Hub-Signature-256")]
    Sha1Only,
    #[error("the {0} header is malformed")]
    Malformed(&'static str),
    #[error("the signature does not match")]
    Mismatch,
    #[error("the webhook-timestamp is {skew} s from now, more than the {tolerance} s allowed")]
    Stale { skew: u64, tolerance: u64 },
}

/// GitHub: `X-Hub-Signature-256: sha256=<64 hex>` over the raw body, checked against each secret
/// in turn (the current one and, during rotation, the previous one).
pub fn verify_github(
    secrets: &[&[u8]],
    body: &[u8],
    sig256: Option<&str>,
    sig1_present: bool,
) -> Result<(), SignatureError> {
    let secrets = usable(secrets)?;
    let header = match sig256 {
        Some(h) => h,
        None if sig1_present => return Err(SignatureError::Sha1Only),
        None => return Err(SignatureError::Missing("X-Hub-Signature-256")),
    };
    let hex_part = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed("X-Hub-Signature-256"))?;
    if hex_part.len() != 64 {
        return Err(SignatureError::Malformed("X-Hub-Signature-256"));
    }
    let mut expected = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut expected)
        .map_err(|_| SignatureError::Malformed("X-Hub-Signature-256"))?;
    if secrets
        .iter()
        .any(|s| hmac_sha256(s, &[body]).ct_eq(&expected).into())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Whether a token given equals a secret: both sides hashed first, so the comparison is
/// constant-time whatever the lengths (a GitLab secret token, a CDEvents sender's bearer token).
pub fn same_secret(secret: &[u8], given: &[u8]) -> bool {
    Sha256::digest(secret).ct_eq(&Sha256::digest(given)).into()
}

/// GitLab: the `X-Gitlab-Token` header equals the configured token.
pub fn verify_gitlab_token(secrets: &[&[u8]], token: Option<&str>) -> Result<(), SignatureError> {
    let secrets = usable(secrets)?;
    let token = token.ok_or(SignatureError::Missing("X-Gitlab-Token"))?;
    if secrets.iter().any(|s| same_secret(s, token.as_bytes())) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// A token shorter than this is no token: it could be guessed.
pub const MIN_TOKEN_BYTES: usize = 32;

/// A sender's token (a CDEvents bearer token, an Alertmanager's basic-auth password or bearer
/// token): one of `tokens` of at least [`MIN_TOKEN_BYTES`], compared as digests in constant time,
/// so neither a token's bytes nor its length leak.
pub fn verify_token(tokens: &[&[u8]], given: &str) -> Result<(), SignatureError> {
    let usable: Vec<&[u8]> = tokens
        .iter()
        .copied()
        .filter(|t| t.len() >= MIN_TOKEN_BYTES)
        .collect();
    if usable.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    if usable.iter().any(|t| same_secret(t, given.as_bytes())) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The Standard Webhooks headers of one delivery.
#[derive(Debug, Clone, Copy)]
pub struct StandardHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Standard Webhooks: `webhook-signature` holds space-separated `v1,<base64>` signatures of
/// `id.timestamp.body` under the base64 key of a `whsec_` secret; the timestamp must be within
/// `tolerance` seconds of `now`. Signatures of other versions are ignored.
pub fn verify_standard(
    secrets: &[&[u8]],
    body: &[u8],
    headers: StandardHeaders<'_>,
    now: u64,
    tolerance: u64,
) -> Result<(), SignatureError> {
    let secrets = usable(secrets)?;
    let keys: Vec<Vec<u8>> = secrets.iter().filter_map(|s| standard_key(s)).collect();
    if keys.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let id = headers.id.ok_or(SignatureError::Missing("webhook-id"))?;
    let ts_text = headers
        .timestamp
        .ok_or(SignatureError::Missing("webhook-timestamp"))?;
    let signature = headers
        .signature
        .ok_or(SignatureError::Missing("webhook-signature"))?;
    let ts: u64 = ts_text
        .parse()
        .map_err(|_| SignatureError::Malformed("webhook-timestamp"))?;
    let skew = now.abs_diff(ts);
    if skew > tolerance {
        return Err(SignatureError::Stale { skew, tolerance });
    }
    let candidates: Vec<[u8; 32]> = signature
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| {
            let mut out = [0u8; 32];
            // A 32-byte MAC is 44 base64 characters; anything else cannot match.
            (b64.len() == 44 && BASE64.decode_slice(b64, &mut out).ok() == Some(32)).then_some(out)
        })
        .collect();
    if candidates.is_empty() {
        return Err(SignatureError::Malformed("webhook-signature"));
    }
    let signed = [id.as_bytes(), b".", ts_text.as_bytes(), b".", body];
    for key in &keys {
        let mac = hmac_sha256(key, &signed);
        if candidates.iter().any(|c| mac.ct_eq(c).into()) {
            return Ok(());
        }
    }
    Err(SignatureError::Mismatch)
}

/// The signing key of a Standard Webhooks secret: base64 after an optional `whsec_` prefix.
fn standard_key(secret: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(secret).ok()?;
    let b64 = text.strip_prefix("whsec_").unwrap_or(text);
    BASE64.decode(b64).ok().filter(|k| !k.is_empty())
}

/// The secrets worth trying: an empty secret would make any signature over it forgeable.
fn usable<'a>(secrets: &[&'a [u8]]) -> Result<Vec<&'a [u8]>, SignatureError> {
    let usable: Vec<&[u8]> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    if usable.is_empty() {
        Err(SignatureError::NoSecret)
    } else {
        Ok(usable)
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// `sha256=<hex>` of `body` under `secret`: what GitHub sends (used by the local stack and tests
/// to sign deliveries).
pub fn github_signature(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(secret, &[body])))
}

/// `v1,<base64>` for a Standard Webhooks delivery, or `None` for a secret that is not base64.
pub fn standard_signature(secret: &str, id: &str, timestamp: u64, body: &[u8]) -> Option<String> {
    let key = standard_key(secret.as_bytes())?;
    let ts = timestamp.to_string();
    Some(format!(
        "v1,{}",
        BASE64.encode(hmac_sha256(
            &key,
            &[id.as_bytes(), b".", ts.as_bytes(), b".", body]
        ))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn github_rejects_wrong_lengths_and_prefixes_before_any_mac() {
        let s: &[&[u8]] = &[b"secret"];
        for bad in [
            "sha256=",
            "sha256=abc",
            "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59",
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        ] {
            assert_eq!(
                verify_github(s, b"x", Some(bad), false),
                Err(SignatureError::Malformed("X-Hub-Signature-256")),
                "{bad}"
            );
        }
        let not_hex = format!("sha256={}", "zz".repeat(32));
        assert_eq!(
            verify_github(s, b"x", Some(&not_hex), false),
            Err(SignatureError::Malformed("X-Hub-Signature-256"))
        );
    }

    #[test]
    fn github_accepts_either_secret_during_rotation() {
        let body = b"{\"zen\":\"Keep it logically awesome.\"}";
        let sig = github_signature(b"old", body);
        assert_eq!(
            verify_github(&[b"new", b"old"], body, Some(&sig), false),
            Ok(())
        );
        assert_eq!(
            verify_github(&[b"new"], body, Some(&sig), false),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn an_empty_secret_fails_closed() {
        let sig = github_signature(b"", b"x");
        assert_eq!(
            verify_github(&[b""], b"x", Some(&sig), false),
            Err(SignatureError::NoSecret)
        );
        assert_eq!(
            verify_github(&[], b"x", Some(&sig), false),
            Err(SignatureError::NoSecret)
        );
        assert_eq!(
            verify_gitlab_token(&[b""], Some("")),
            Err(SignatureError::NoSecret)
        );
        assert_eq!(
            verify_gitlab_token(&[b"not base64!"], Some("x")),
            Err(SignatureError::Mismatch)
        );
        let h = StandardHeaders {
            id: Some("m"),
            timestamp: Some("1"),
            signature: Some("v1,x"),
        };
        assert_eq!(
            verify_standard(&[b"whsec_"], b"x", h, 1, 300),
            Err(SignatureError::NoSecret)
        );
    }

    #[test]
    fn gitlab_token_must_match_exactly() {
        assert_eq!(verify_gitlab_token(&[b"tok"], Some("tok")), Ok(()));
        assert_eq!(
            verify_gitlab_token(&[b"tok"], Some("tok ")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_gitlab_token(&[b"tok"], Some("to")),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_gitlab_token(&[b"tok"], None),
            Err(SignatureError::Missing("X-Gitlab-Token"))
        );
    }

    proptest! {
        #[test]
        fn any_change_to_a_github_body_is_rejected(body in proptest::collection::vec(any::<u8>(), 1..512), flip in any::<usize>(), bit in 0u8..8) {
            let sig = github_signature(b"s3cret", &body);
            prop_assert_eq!(verify_github(&[b"s3cret"], &body, Some(&sig), false), Ok(()));
            let mut tampered = body.clone();
            let i = flip % tampered.len();
            tampered[i] ^= 1 << bit;
            prop_assert_eq!(verify_github(&[b"s3cret"], &tampered, Some(&sig), false), Err(SignatureError::Mismatch));
        }

        #[test]
        fn standard_signatures_round_trip(body in proptest::collection::vec(any::<u8>(), 0..256), ts in 1_000_000u64..2_000_000_000) {
            let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
            let sig = standard_signature(secret, "msg_1", ts, &body).unwrap();
            let h = StandardHeaders { id: Some("msg_1"), timestamp: Some(&ts.to_string()), signature: Some(&sig) };
            prop_assert_eq!(verify_standard(&[secret.as_bytes()], &body, h, ts, 300), Ok(()));
            let h2 = StandardHeaders { id: Some("msg_2"), ..h };
            prop_assert_eq!(verify_standard(&[secret.as_bytes()], &body, h2, ts, 300), Err(SignatureError::Mismatch));
        }
    }
}
