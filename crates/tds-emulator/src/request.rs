//! What a post-login request asks for: `SELECT 1`, a sized result set, or something the
//! emulator does not interpret.
//!
//! The sized-result marker is `SELECT ROWS <n> BYTES <m>` anywhere in the query text (case
//! insensitive): `n` rows of one BIGVARBINARY column of `m` bytes (m ≤ 8000, n × m ≤ 64 MiB).

use crate::tokens::MAX_CELL_BYTES;

/// Largest sized result the emulator builds.
const MAX_RESULT_BYTES: u64 = 64 << 20;
/// Bytes of a sized-result row besides its cell: the ROW token and the u16 cell length.
const ROW_OVERHEAD: u64 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Query {
    SelectOne,
    Rows { rows: u64, bytes: usize },
    Other,
}

/// Classifies a SQL batch payload: ALL_HEADERS (TDS 7.2+) then UTF-16LE text.
pub(crate) fn classify_batch(payload: &[u8]) -> Query {
    classify_text(&utf16_text(skip_all_headers(payload)), true)
}

/// Classifies an RPC payload (tiberius sends `sp_executesql` with the statement as an NVARCHAR
/// parameter). The text is searched at both byte alignments.
pub(crate) fn classify_rpc(payload: &[u8]) -> Query {
    let body = skip_all_headers(payload);
    let even = classify_text(&utf16_text(body), false);
    if even != Query::Other {
        return even;
    }
    classify_text(&utf16_text(body.get(1..).unwrap_or_default()), false)
}

/// The request type of a transaction-manager payload (after ALL_HEADERS).
pub(crate) fn transaction_request_type(payload: &[u8]) -> Option<u16> {
    let body = skip_all_headers(payload);
    body.first_chunk::<2>().map(|b| u16::from_le_bytes(*b))
}

/// ALL_HEADERS starts with its own total length (u32 LE); text starts right after it. A payload
/// whose first u32 cannot be that length has no ALL_HEADERS (TDS ≤ 7.1).
fn skip_all_headers(payload: &[u8]) -> &[u8] {
    let Some(len) = payload.first_chunk::<4>().map(|b| u32::from_le_bytes(*b)) else {
        return payload;
    };
    match usize::try_from(len) {
        Ok(len) if (4..=payload.len()).contains(&len) => &payload[len..],
        _ => payload,
    }
}

fn utf16_text(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

fn classify_text(text: &str, whole: bool) -> Query {
    let words: Vec<String> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    for window in words.windows(5) {
        if window[0].ends_with("SELECT") && window[1] == "ROWS" && window[3] == "BYTES" {
            let rows = window[2].parse::<u64>();
            let bytes = window[4].parse::<usize>();
            if let (Ok(rows), Ok(bytes)) = (rows, bytes) {
                let bytes = bytes.min(MAX_CELL_BYTES);
                // Each row costs the ROW token and a u16 length besides its cell: a cap on cell
                // bytes alone lets `BYTES 0` ask for 64 Mi rows (192 MiB of tokens).
                let rows = rows.min(MAX_RESULT_BYTES / (bytes as u64 + ROW_OVERHEAD));
                return Query::Rows { rows, bytes };
            }
        }
    }
    let is_select_one = |pair: &[String]| pair[0].ends_with("SELECT") && pair[1] == "1";
    let found = if whole {
        words.len() == 2 && is_select_one(&words)
    } else {
        words.windows(2).any(is_select_one)
    };
    if found {
        Query::SelectOne
    } else {
        Query::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(text: &str) -> Vec<u8> {
        let mut payload = vec![0x16, 0, 0, 0, 0x12, 0, 0, 0, 2, 0];
        payload.extend_from_slice(&[0; 8]);
        payload.extend_from_slice(&1u32.to_le_bytes());
        for unit in text.encode_utf16() {
            payload.extend_from_slice(&unit.to_le_bytes());
        }
        payload
    }

    #[test]
    fn classifies_batches() {
        assert_eq!(classify_batch(&batch("SELECT 1")), Query::SelectOne);
        assert_eq!(classify_batch(&batch("  select 1; ")), Query::SelectOne);
        assert_eq!(classify_batch(&batch("SELECT 10")), Query::Other);
        assert_eq!(
            classify_batch(&batch("SELECT ROWS 10 BYTES 100")),
            Query::Rows {
                rows: 10,
                bytes: 100
            }
        );
        assert_eq!(
            classify_batch(&batch("select rows 5 bytes 100000")),
            Query::Rows {
                rows: 5,
                bytes: MAX_CELL_BYTES
            }
        );
        assert_eq!(classify_batch(&[]), Query::Other);
        assert_eq!(classify_batch(&[0xFF; 3]), Query::Other);
    }

    #[test]
    fn sized_results_stay_under_the_byte_cap_whatever_the_cell_size() {
        for cell in [0usize, 1, 2, 100, 8000, 100_000] {
            let Query::Rows { rows, bytes } = classify_batch(&batch(&format!(
                "SELECT ROWS 18446744073709551615 BYTES {cell}"
            ))) else {
                panic!("not a sized query");
            };
            assert!(rows > 0);
            let total = rows * (bytes as u64 + ROW_OVERHEAD);
            assert!(
                total <= MAX_RESULT_BYTES,
                "cell {cell}: {rows} rows = {total} bytes"
            );
            if cell == 0 {
                // The case the cap used to miss: empty cells, where only the overhead counts.
                let built =
                    crate::tokens::sized_rows(crate::tokens::RequestKind::Batch, rows, bytes);
                assert!(
                    built.len() as u64 <= MAX_RESULT_BYTES + 64,
                    "{}",
                    built.len()
                );
            }
        }
    }

    #[test]
    fn classifies_rpc_at_odd_alignment() {
        let mut payload = vec![0xFF, 0xFF, 0x0A, 0x00, 0x00];
        payload.extend(batch("SELECT 1").into_iter().skip(22));
        assert_eq!(classify_rpc(&payload), Query::SelectOne);
    }
}
