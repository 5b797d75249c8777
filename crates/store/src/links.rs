//! Download links that work for a while without other credentials:
//! `<public_url>/files/<token>`, where the token names one version of one
//! file in one format, the name to save it as and an expiry, signed with
//! HMAC-SHA256 under a key derived from the server secret. Anyone holding
//! the link may download until it expires; a changed byte makes it worthless.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::training_files::DownloadFormat;

type HmacSha256 = Hmac<Sha256>;

/// Longest token accepted: a link names a few ids and a filename.
const MAX_TOKEN_CHARS: usize = 4096;

/// Where links point, what signs them and how long they work.
#[derive(Clone)]
pub struct LinkSettings {
    /// Where clients reach the server (`/files/<token>` is appended).
    pub public_url: String,
    pub secret: Vec<u8>,
    pub lifetime: std::time::Duration,
}

impl Default for LinkSettings {
    /// Links of a process that does not serve them (CLI commands): a random key.
    fn default() -> Self {
        Self { public_url: "http://127.0.0.1:8080".into(), secret: uuid::Uuid::new_v4().as_bytes().to_vec(), lifetime: std::time::Duration::from_secs(3600) }
    }
}

impl std::fmt::Debug for LinkSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkSettings").field("public_url", &self.public_url).field("lifetime", &self.lifetime).finish_non_exhaustive()
    }
}

/// What a link names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkTarget {
    #[serde(rename = "o")]
    pub owner: String,
    #[serde(rename = "t")]
    pub file_id: String,
    #[serde(rename = "v")]
    pub version: i64,
    #[serde(rename = "x")]
    pub format: DownloadFormat,
    #[serde(rename = "f")]
    pub filename: String,
    /// Unix seconds after which the link no longer works.
    #[serde(rename = "e")]
    pub expires: i64,
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this download link is not valid")]
    Invalid,
    #[error("this download link has expired; ask for a new one")]
    Expired,
    #[error("the training file this link names has been deleted")]
    Gone,
}

pub(crate) struct Signer {
    key: Vec<u8>,
}

impl Signer {
    /// Download links get their own key, so a token signature never doubles as one.
    pub fn new(secret: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(b"lora-files download links v2");
        Self { key: mac.finalize().into_bytes().to_vec() }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    pub fn sign(&self, target: &LinkTarget) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(target).expect("plain data"));
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// What a token names, if its signature holds and it has not expired.
    pub fn verify(&self, token: &str, now: i64) -> Result<LinkTarget, LinkError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(LinkError::Invalid);
        }
        let (payload, signature) = token.split_once('.').ok_or(LinkError::Invalid)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| LinkError::Invalid)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).map_err(|_| LinkError::Invalid)?; // constant time
        let target: LinkTarget = URL_SAFE_NO_PAD.decode(payload).ok().and_then(|json| serde_json::from_slice(&json).ok()).ok_or(LinkError::Invalid)?;
        if target.expires < now {
            return Err(LinkError::Expired);
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> LinkTarget {
        LinkTarget {
            owner: "u".into(),
            file_id: "f".into(),
            version: 3,
            format: DownloadFormat::Jsonl,
            filename: "Batch 1.jsonl".into(),
            expires: 2_000,
        }
    }

    #[test]
    fn a_signed_link_verifies_until_it_expires() {
        let signer = Signer::new(b"secret");
        let token = signer.sign(&target());
        assert_eq!(signer.verify(&token, 1_999).unwrap(), target());
        assert_eq!(signer.verify(&token, 2_001).unwrap_err(), LinkError::Expired);
    }

    #[test]
    fn a_tampered_or_foreign_link_is_refused() {
        let signer = Signer::new(b"secret");
        let token = signer.sign(&target());
        let other = LinkTarget { version: 1, ..target() };
        let (_, signature) = token.split_once('.').unwrap();
        let forged = format!("{}.{signature}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap()));
        assert_eq!(signer.verify(&forged, 0), Err(LinkError::Invalid));
        assert_eq!(Signer::new(b"other secret").verify(&token, 0), Err(LinkError::Invalid));
        assert_eq!(signer.verify("no-dot", 0), Err(LinkError::Invalid));
        assert_eq!(signer.verify(&"a.".repeat(5000), 0), Err(LinkError::Invalid));
    }

    /// Property tests (proptest, run by `cargo test`): whatever arrives as a
    /// token, `verify` answers without panicking, and only an untouched
    /// signed token verifies.
    mod properties {
        use proptest::prelude::*;

        use super::*;

        const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

        fn any_target() -> impl Strategy<Value = LinkTarget> {
            (any::<String>(), "[0-9a-f-]{0,36}", any::<i64>(), any::<bool>(), any::<String>(), any::<i64>()).prop_map(|(owner, file_id, version, jsonl, filename, expires)| LinkTarget {
                owner,
                file_id,
                version,
                format: if jsonl { DownloadFormat::Jsonl } else { DownloadFormat::Json },
                filename,
                expires,
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn random_text_never_verifies(token in "\\PC{0,300}|[A-Za-z0-9_.-]{0,400}") {
                prop_assert_eq!(Signer::new(b"secret").verify(&token, 0), Err(LinkError::Invalid));
            }

            #[test]
            fn a_signed_target_round_trips(target in any_target()) {
                let signer = Signer::new(b"secret");
                let token = signer.sign(&target);
                let verified = signer.verify(&token, i64::MIN);
                if token.len() > MAX_TOKEN_CHARS {
                    prop_assert_eq!(verified, Err(LinkError::Invalid));
                } else {
                    prop_assert_eq!(verified, Ok(target));
                }
            }

            #[test]
            fn a_changed_character_never_verifies(target in any_target(), at in any::<prop::sample::Index>(), with in 0..64usize) {
                let signer = Signer::new(b"secret");
                let mut token = signer.sign(&target).into_bytes();
                let at = at.index(token.len());
                let replacement = if token[at] == BASE64URL[with] { BASE64URL[(with + 1) % 64] } else { BASE64URL[with] };
                token[at] = replacement;
                let token = String::from_utf8(token).unwrap();
                prop_assert!(signer.verify(&token, i64::MIN).is_err(), "{token}");
            }

            #[test]
            fn a_truncated_or_extended_token_never_verifies(target in any_target(), cut in any::<prop::sample::Index>(), tail in "[A-Za-z0-9_.-]{1,8}") {
                let signer = Signer::new(b"secret");
                let token = signer.sign(&target);
                let cut = cut.index(token.len());
                prop_assert!(signer.verify(&token[..cut], i64::MIN).is_err());
                let extended = token.clone() + &tail;
                prop_assert!(signer.verify(&extended, i64::MIN).is_err());
            }
        }
    }
}
