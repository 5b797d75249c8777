//! Signed download URLs for local storage: `/files/<token>`, where the token
//! carries the object key, the download filename and an expiry, signed with
//! HMAC-SHA256 under a key derived from the server secret. Anyone holding the
//! URL may download until it expires; a changed byte makes it worthless.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures::TryStreamExt;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use lora_files_store::blobs::ObjectKind;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

type HmacSha256 = Hmac<Sha256>;

pub struct UrlSigner {
    key: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedObject {
    #[serde(rename = "k")]
    pub key: String,
    #[serde(rename = "f")]
    pub filename: String,
    /// Unix seconds after which the URL no longer works.
    #[serde(rename = "e")]
    pub expires: i64,
}

impl UrlSigner {
    /// Download URLs get their own key, so a token signature never doubles as one.
    pub fn new(secret: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(b"lora-files download urls v1");
        Self { key: mac.finalize().into_bytes().to_vec() }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    pub fn sign(&self, object: &SignedObject) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(object).expect("plain data"));
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// The object a token names, if its signature holds and it has not expired.
    pub fn verify(&self, token: &str, now: i64) -> Result<SignedObject, ApiError> {
        let forbidden = || ApiError::forbidden("this download link is not valid");
        let (payload, signature) = token.split_once('.').ok_or_else(forbidden)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| forbidden())?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).map_err(|_| forbidden())?; // constant time
        let object: SignedObject = URL_SAFE_NO_PAD.decode(payload).ok().and_then(|json| serde_json::from_slice(&json).ok()).ok_or_else(forbidden)?;
        if object.expires < now {
            return Err(ApiError::forbidden("this download link has expired; ask for a new one"));
        }
        Ok(object)
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/files/{token}", get(serve_file))
}

/// Streams a signed object with its type, length and download filename.
pub async fn serve_file(State(state): State<AppState>, Path(token): Path<String>) -> ApiResult<Response> {
    let object = state.signer.verify(&token, chrono::Utc::now().timestamp())?;
    let kind = ObjectKind::of_key(&object.key).ok_or_else(|| ApiError::forbidden("this download link is not valid"))?;
    let size = state.store.blobs.size(&object.key).await?.ok_or_else(ApiError::not_found)?;
    let stream = state.store.blobs.stream(&object.key).await?.map_err(std::io::Error::other);
    let response = Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, kind.content_type())
        .header(CONTENT_LENGTH, size)
        .header(CONTENT_DISPOSITION, content_disposition(&object.filename))
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)?;
    Ok(response)
}

/// `attachment; filename="…"` with an ASCII fallback and the UTF-8 name (RFC 6266).
pub fn content_disposition(filename: &str) -> HeaderValue {
    let ascii: String = filename.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let encoded: String = filename
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    HeaderValue::from_str(&format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object() -> SignedObject {
        SignedObject { key: "training-files/x/v1-abc.json".into(), filename: "Batch 1.json".into(), expires: 2_000 }
    }

    #[test]
    fn a_signed_url_verifies_until_it_expires() {
        let signer = UrlSigner::new(b"secret");
        let token = signer.sign(&object());
        assert_eq!(signer.verify(&token, 1_999).unwrap(), object());
        assert_eq!(signer.verify(&token, 2_001).unwrap_err().status, StatusCode::FORBIDDEN);
    }

    #[test]
    fn a_tampered_or_foreign_url_is_refused() {
        let signer = UrlSigner::new(b"secret");
        let token = signer.sign(&object());
        let other = SignedObject { key: "training-files/y/v1-abc.json".into(), ..object() };
        let (_, signature) = token.split_once('.').unwrap();
        let forged = format!("{}.{signature}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap()));
        assert!(signer.verify(&forged, 0).is_err());
        assert!(UrlSigner::new(b"other secret").verify(&token, 0).is_err());
        assert!(signer.verify("no-dot", 0).is_err());
    }

    #[test]
    fn filenames_are_quoted_safely() {
        assert_eq!(content_disposition("Batch \"1\".json"), "attachment; filename=\"Batch _1_.json\"; filename*=UTF-8''Batch%20%221%22.json");
        assert_eq!(content_disposition("é.jsonl"), "attachment; filename=\"_.jsonl\"; filename*=UTF-8''%C3%A9.jsonl");
    }
}
