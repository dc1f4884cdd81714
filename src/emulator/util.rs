//! Small pure helpers for the emulator: dates from milliseconds, ids from the seeded RNG,
//! base64url, URL and query splitting, HTML escaping. No I/O, no clock.

use base64::Engine as _;
use rand_chacha::ChaCha20Rng;
use rand_core::Rng as _;

/// Days since 1970-01-01 → (year, month, day) (proleptic Gregorian; Howard Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parts(ms: i64) -> (i64, u32, u32, i64, i64, i64, i64) {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, mo, d) = civil_from_days(days);
    (y, mo, d, rem / 3600, (rem % 3600) / 60, rem % 60, milli)
}

/// `2024-05-01T12:00:00Z` (Graph's DateTimeOffset as it returns credentials' dates).
pub fn iso_z(ms: u64) -> String {
    let (y, mo, d, h, mi, s, _) = parts(ms as i64);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `2024-05-01T12:00:00.123Z`.
pub fn iso_ms_z(ms: u64) -> String {
    let (y, mo, d, h, mi, s, milli) = parts(ms as i64);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// `2021-07-02T01:40:19` — Graph's `innerError.date` (no offset).
pub fn iso_no_offset(ms: u64) -> String {
    let (y, mo, d, h, mi, s, _) = parts(ms as i64);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
}

/// `2021-07-02 01:40:19Z` — the `Timestamp:` line of an AADSTS description.
pub fn aadsts_timestamp(ms: u64) -> String {
    let (y, mo, d, h, mi, s, _) = parts(ms as i64);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}Z")
}

/// Parses an ISO 8601 date-time with `Z` or an offset (fraction allowed), or without offset
/// (taken as UTC, as Graph does). Returns Unix milliseconds; `None` if malformed.
pub fn parse_iso(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b't') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut milli = 0i64;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let frac = &r[..n];
        let mut m = String::from(&frac[..n.min(3)]);
        while m.len() < 3 {
            m.push('0');
        }
        milli = m.parse().ok()?;
        rest = &r[n..];
    }
    let offset_min: i64 = match rest {
        "" | "Z" | "z" => 0,
        o if o.len() == 6
            && (o.starts_with('+') || o.starts_with('-'))
            && o.get(3..4) == Some(":") =>
        {
            let oh: i64 = o.get(1..3)?.parse().ok()?;
            let om: i64 = o.get(4..6)?.parse().ok()?;
            let v = oh * 60 + om;
            if o.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    secs.checked_mul(1000)?.checked_add(milli)
}

/// A random GUID (version 4 layout) from the seeded RNG.
pub fn uuid(rng: &mut ChaCha20Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `n` random bytes as base64url (no padding).
pub fn random_b64url(rng: &mut ChaCha20Rng, n: usize) -> String {
    let mut b = vec![0u8; n];
    rng.fill_bytes(&mut b);
    b64url(&b)
}

/// A client secret like Entra's: 40 characters of `[A-Za-z0-9~._-]`.
pub fn secret_text(rng: &mut ChaCha20Rng) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-";
    (0..40)
        .map(|_| CHARS[(rng.next_u32() as usize) % CHARS.len()] as char)
        .collect()
}

pub fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

pub fn b64_std(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Standard base64 (padding optional) or base64url; whitespace ignored.
pub fn b64_any_decode(s: &str) -> Option<Vec<u8>> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let t = clean.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(t)
        .ok()
        .or_else(|| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
        })
}

/// `s` without `prefix` (ASCII case-insensitive), or `None`. Never slices inside a character.
pub fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// An absolute URL split into (origin = `scheme://host[:port]`, path, query without `?`).
/// A fragment is dropped. A relative URL (starting with `/`) gets an empty origin.
pub fn split_url(url: &str) -> (String, String, String) {
    let url = url.split('#').next().unwrap_or("");
    let (origin, rest) = if let Some(i) = url.find("://") {
        let after = &url[i + 3..];
        let end = after.find(['/', '?']).unwrap_or(after.len());
        (url[..i + 3 + end].to_string(), &after[end..])
    } else {
        (String::new(), url)
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, q),
        None => (rest, ""),
    };
    let path = if path.is_empty() { "/" } else { path };
    (origin, path.to_string(), query.to_string())
}

/// Query pairs, decoded (`+` is a space).
pub fn query_pairs(q: &str) -> Vec<(String, String)> {
    crate::engine::http::form_decode(q)
}

pub fn get<'a>(pairs: &'a [(String, String)], k: &str) -> Option<&'a str> {
    pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// Escapes text for HTML element content and attribute values.
pub fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

/// Percent-decodes a path segment (no `+` handling).
pub fn pct_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(iso_z(0), "1970-01-01T00:00:00Z");
        let ms = 1_625_190_019_000u64;
        assert_eq!(iso_no_offset(ms), "2021-07-02T01:40:19");
        assert_eq!(parse_iso("2021-07-02T01:40:19Z"), Some(ms as i64));
        assert_eq!(parse_iso("2021-07-02T03:40:19.000+02:00"), Some(ms as i64));
        assert_eq!(parse_iso("2021-07-02T01:40:19.5"), Some(ms as i64 + 500));
        assert_eq!(parse_iso("next year"), None);
        assert_eq!(parse_iso("2021-13-02T01:40:19Z"), None);
        assert_eq!(parse_iso("2021-07-02T01:40:19ZZ"), None);
        for d in [-1000i64, 0, 59, 20000, 3_000_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }

    #[test]
    fn urls() {
        let (o, p, q) = split_url("http://127.0.0.1:8400/v1.0/applications?$filter=x#f");
        assert_eq!(
            (o.as_str(), p.as_str(), q.as_str()),
            ("http://127.0.0.1:8400", "/v1.0/applications", "$filter=x")
        );
        let (o, p, q) = split_url("/me");
        assert_eq!((o.as_str(), p.as_str(), q.as_str()), ("", "/me", ""));
        assert!(is_guid("6f1c3b1e-2d4a-4c8e-9f10-0a1b2c3d4e5f"));
        assert!(!is_guid("6f1c3b1e-2d4a-4c8e-9f10-0a1b2c3d4e5"));
        assert_eq!(
            strip_prefix_ci("Applications(x)", "applications"),
            Some("(x)")
        );
        assert_eq!(strip_prefix_ci("applicatioñs", "applications"), None);
        assert_eq!(parse_iso("2021-07-02T01:40:19+0é00"), None);
    }
}
