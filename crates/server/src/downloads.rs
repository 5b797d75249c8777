//! `/files/<token>`: what a signed download link names, streamed from the
//! version's manifest with its exact `Content-Length`, a strong `ETag`, and
//! single `Range` requests (`206`, `416`), so `curl -C -` resumes a download
//! of any size. The link needs no other credentials; the store checks it.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::{ACCEPT_RANGES, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, RANGE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use futures::TryStreamExt;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/files/{token}", get(serve_file))
}

/// Streams a signed download, whole or the one range asked for.
pub async fn serve_file(State(state): State<AppState>, Path(token): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    let download = state.store.training_files().open_link(&token).await?;
    let size = download.size();
    let etag = download.etag();
    let range = match requested_range(&headers, &etag, size) {
        Ok(range) => range,
        Err(()) => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(CONTENT_RANGE, format!("bytes */{size}"))
                .header(CONTENT_TYPE, "application/json")
                .body(Body::from(r#"{"error":"the range asked for is not in this file","code":"range_not_satisfiable"}"#))
                .map_err(ApiError::internal);
        }
    };
    let mut response = Response::builder()
        .header(CONTENT_TYPE, download.content_type())
        .header(CONTENT_DISPOSITION, content_disposition(download.filename()))
        .header(ETAG, &etag)
        .header(ACCEPT_RANGES, "bytes");
    response = match &range {
        Some(range) => response
            .status(StatusCode::PARTIAL_CONTENT)
            .header(CONTENT_RANGE, format!("bytes {}-{}/{size}", range.start, range.end - 1))
            .header(CONTENT_LENGTH, range.end - range.start),
        None => response.status(StatusCode::OK).header(CONTENT_LENGTH, size),
    };
    let body = download.body(range).map_err(std::io::Error::other);
    response.body(Body::from_stream(body)).map_err(ApiError::internal)
}

/// The one byte range to send: `None` for the whole file (no `Range`, an
/// `If-Range` that no longer matches, or several ranges, which are answered
/// whole as RFC 9110 allows); `Err` when nothing asked for is in the file.
fn requested_range(headers: &HeaderMap, etag: &str, size: u64) -> Result<Option<std::ops::Range<u64>>, ()> {
    let Some(value) = headers.get(RANGE).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    if headers.get(IF_RANGE).is_some_and(|v| v.as_bytes() != etag.as_bytes()) {
        return Ok(None);
    }
    let Ok(parsed) = http_range_header::parse_range_header(value) else { return Ok(None) };
    match parsed.validate(size).map_err(|_| ())?.as_slice() {
        [range] => Ok(Some(*range.start()..*range.end() + 1)),
        _ => Ok(None),
    }
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

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(name, value)| (name.parse().unwrap(), HeaderValue::from_static(value))).collect()
    }

    #[test]
    fn single_ranges_are_served_and_anything_else_whole() {
        let etag = "\"f-v1-json\"";
        assert_eq!(requested_range(&headers(&[]), etag, 100), Ok(None));
        assert_eq!(requested_range(&headers(&[("range", "bytes=10-19")]), etag, 100), Ok(Some(10..20)));
        assert_eq!(requested_range(&headers(&[("range", "bytes=90-")]), etag, 100), Ok(Some(90..100)), "curl -C -");
        assert_eq!(requested_range(&headers(&[("range", "bytes=-5")]), etag, 100), Ok(Some(95..100)));
        assert_eq!(requested_range(&headers(&[("range", "bytes=0-1,5-6")]), etag, 100), Ok(None));
        assert_eq!(requested_range(&headers(&[("range", "pages=1")]), etag, 100), Ok(None));
        assert_eq!(requested_range(&headers(&[("range", "bytes=100-")]), etag, 100), Err(()));
        assert_eq!(requested_range(&headers(&[("range", "bytes=10-19"), ("if-range", "\"other\"")]), etag, 100), Ok(None));
        assert_eq!(requested_range(&headers(&[("range", "bytes=10-19"), ("if-range", "\"f-v1-json\"")]), etag, 100), Ok(Some(10..20)));
    }

    #[test]
    fn filenames_are_quoted_safely() {
        assert_eq!(content_disposition("Batch \"1\".json"), "attachment; filename=\"Batch _1_.json\"; filename*=UTF-8''Batch%20%221%22.json");
        assert_eq!(content_disposition("é.jsonl"), "attachment; filename=\"_.jsonl\"; filename*=UTF-8''%C3%A9.jsonl");
    }
}
