//! Keyset paging shared by the lists: opaque cursors over `(created_at, id)`,
//! a `limit + 1` fetch cut to a page, and LIKE patterns that match text as given.

use crate::records::Page;
use crate::StoreError;

/// Cursors are opaque to clients: hex of `created_at|id` of the last item.
pub(crate) fn encode_cursor(created_at: &str, id: &str) -> String {
    hex::encode(format!("{created_at}|{id}"))
}

/// The `(created_at, id)` a cursor continues after; `(None, None)` for the first page.
pub(crate) fn decode_cursor(cursor: Option<&str>) -> Result<(Option<String>, Option<String>), StoreError> {
    let Some(cursor) = cursor else { return Ok((None, None)) };
    let bad = || StoreError::invalid("cursor", "not a cursor from this list");
    let text = String::from_utf8(hex::decode(cursor).map_err(|_| bad())?).map_err(|_| bad())?;
    let (time, id) = text.split_once('|').ok_or_else(bad)?;
    Ok((Some(time.to_owned()), Some(id.to_owned())))
}

/// Cuts a `limit + 1` fetch to a page and its next cursor.
pub(crate) fn page<T>(items: &mut Vec<T>, limit: i64, key: impl Fn(&T) -> (String, String)) -> Page<T> {
    let more = items.len() as i64 > limit;
    items.truncate(limit.max(0) as usize);
    let next_cursor = if more {
        items.last().map(|last| {
            let (time, id) = key(last);
            encode_cursor(&time, &id)
        })
    } else {
        None
    };
    Page { items: std::mem::take(items), next_cursor }
}

/// `%text%` for `LIKE … ESCAPE '\'`, lower-cased, with the pattern characters escaped.
pub(crate) fn contains_pattern(text: &str) -> String {
    let escaped = text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}
