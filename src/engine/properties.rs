//! Java `.properties` text: the writer for `bacula_m365_config.conf` (escaping exactly as
//! `java.util.Properties.store(OutputStream, …)`), a reader with `Properties.load` semantics (for
//! tests and renew), and the Java `Date.toString()` timestamp; must not import web, emulator or any
//! I/O crate, and takes the time as a parameter.
//!
//! Format reference: the `java.util.Properties` Javadoc of `load(Reader)` and `store(Writer,
//! String)` (Java SE 17); behaviour checked against a real JVM in `tests/peer_properties.rs`.

use crate::engine::secret::{AppId, ClientSecret, ObjectId, PfxPassword, TenantId};

/// The file name the plugin's `add-app` writes and filesets reference (`config_file=…`).
pub const CONFIG_FILE_NAME: &str = "bacula_m365_config.conf";

/// Where the plugin keeps one config per tenant; `{tenant}` is replaced by the tenant label.
pub const DEFAULT_CONFIG_DIR_TEMPLATE: &str = "/opt/bacula/etc/m365/{tenant}";

/// Longest value the reader accepts for one logical line (1 MiB); a config is a few hundred bytes.
const MAX_LINE_CHARS: usize = 1 << 20;

/// Why a properties text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PropertiesError {
    /// `\u` not followed by four hex digits (Java throws `IllegalArgumentException` here).
    #[error("malformed \\uxxxx escape on line {line}")]
    MalformedUnicode { line: usize },
    /// A logical line longer than the reader accepts.
    #[error("line {line} is too long")]
    LineTooLong { line: usize },
    /// A key the config file must have is absent.
    #[error("missing key {0}")]
    MissingKey(&'static str),
}

// ---------------------------------------------------------------------------------------------
// Date

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Proleptic Gregorian (year, month 1-12, day 1-31) of a count of days since 1970-01-01
/// (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms", `civil_from_days`). Total for
/// every `i64` input that `unix_secs / 86400` can produce.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both fit: day in [1, 31], month in [1, 12].
    (year, month as u32, day as u32)
}

/// `Date.toString()` of a Unix time as Java prints it with the default zone set to UTC:
/// `Thu Jul 01 10:30:34 UTC 2021` (`EEE MMM dd HH:mm:ss zzz yyyy`, English names, the year
/// unpadded). Proleptic Gregorian: Java switches to the Julian calendar before 1582-10-15, which
/// no timestamp we write comes near.
pub fn java_date_utc(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday, WEEKDAYS[0].
    let weekday = WEEKDAYS[days.rem_euclid(7) as usize];
    let month_name = MONTHS[(month as usize).saturating_sub(1).min(11)];
    format!(
        "{weekday} {month_name} {day:02} {:02}:{:02}:{:02} UTC {year}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

// ---------------------------------------------------------------------------------------------
// Writer

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn push_unicode_escape(out: &mut String, unit: u16) {
    out.push_str("\\u");
    for shift in [12u16, 8, 4, 0] {
        out.push(char::from(HEX_UPPER[usize::from((unit >> shift) & 0xF)]));
    }
}

/// Java's escaping of one key or value, `store(OutputStream)` flavour: works on UTF-16 units like
/// Java, so a non-BMP character becomes two surrogate escapes.
fn save_convert(s: &str, escape_space: bool) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for (i, unit) in s.encode_utf16().enumerate() {
        match unit {
            0x5C => out.push_str("\\\\"),
            0x20 => {
                if i == 0 || escape_space {
                    out.push('\\');
                }
                out.push(' ');
            }
            0x09 => out.push_str("\\t"),
            0x0A => out.push_str("\\n"),
            0x0D => out.push_str("\\r"),
            0x0C => out.push_str("\\f"),
            0x3D | 0x3A | 0x23 | 0x21 => {
                out.push('\\');
                out.push(char::from(unit as u8));
            }
            // Printable ASCII other than the above is written as is.
            0x21..=0x7E => out.push(char::from(unit as u8)),
            // Other controls, DEL, everything beyond ASCII: `\uXXXX`, upper-case hex.
            _ => push_unicode_escape(&mut out, unit),
        }
    }
    out
}

/// Escapes a key as `Properties.store(OutputStream, …)` does: `\\`, `\=`, `\:`, `\#`, `\!`,
/// every space as `\ `, `\t \n \r \f`, other characters below U+0020 or above U+007E as
/// `\uXXXX` (UTF-16 units, upper-case hex).
pub fn escape_key(key: &str) -> String {
    save_convert(key, true)
}

/// Escapes a value like [`escape_key`], except that only a leading space is escaped.
pub fn escape_value(value: &str) -> String {
    save_convert(value, false)
}

/// Writes one comment the way `Properties.store` writes its comment argument: `#` first, a line
/// break inside continues as a new `#` line (unless the next line already starts with `#` or
/// `!`). Java writes U+0080..U+00FF raw in ISO-8859-1; this writer escapes everything beyond
/// ASCII as `\uXXXX` so the whole file stays ASCII (the reader ignores comments either way).
fn write_comment(out: &mut String, comment: &str) {
    out.push('#');
    let units: Vec<u16> = comment.encode_utf16().collect();
    let mut i = 0;
    while i < units.len() {
        let u = units[i];
        if u == 0x0A || u == 0x0D {
            out.push('\n');
            if u == 0x0D && units.get(i + 1) == Some(&0x0A) {
                i += 1;
            }
            match units.get(i + 1) {
                Some(&0x23) | Some(&0x21) => {}
                _ => out.push('#'),
            }
        } else if u > 0x7E {
            push_unicode_escape(out, u);
        } else {
            out.push(char::from(u as u8));
        }
        i += 1;
    }
    out.push('\n');
}

/// A properties text like `Properties.store(out, comment)`: an optional `#comment` line, `#` +
/// `date_line`, then `key=value` lines in the given order (Java's own order is its hash order).
/// Lines end with `\n`: Bacula clients are Linux, where Java itself writes `\n`, and
/// `Properties.load` accepts `\n`, `\r` and `\r\n` on every platform. The output is ASCII.
pub fn write_properties(comment: Option<&str>, date_line: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    if let Some(c) = comment {
        write_comment(&mut out, c);
    }
    write_comment(&mut out, date_line);
    for (k, v) in pairs {
        out.push_str(&escape_key(k));
        out.push('=');
        out.push_str(&escape_value(v));
        out.push('\n');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Reader

fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0C'
}

/// Splits text into logical lines as `Properties.load` does: leading white space dropped, blank
/// lines and `#`/`!` comment lines skipped, a line ending in an odd number of backslashes joined
/// with the next (whose leading white space is dropped). Yields (first physical line number,
/// characters).
struct LogicalLines<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    /// Physical line of the next character (`\r\n` counts once).
    line: usize,
    last_cr: bool,
}

impl<'a> LogicalLines<'a> {
    fn new(text: &'a str) -> Self {
        LogicalLines {
            chars: text.chars().peekable(),
            line: 1,
            last_cr: false,
        }
    }

    fn next_char(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if c == '\r' || (c == '\n' && !self.last_cr) {
            self.line += 1;
        }
        self.last_cr = c == '\r';
        Some(c)
    }

    fn finish(mut buf: Vec<char>, backslash: bool) -> Vec<char> {
        if backslash {
            buf.pop();
        }
        buf
    }

    fn next_line(&mut self) -> Result<Option<(usize, Vec<char>)>, PropertiesError> {
        let mut buf: Vec<char> = Vec::new();
        let mut skip_ws = true;
        // True right after a continuation: a line break then ends the (joined) line.
        let mut continued = false;
        let mut backslash = false;
        let mut start = self.line;
        loop {
            let at = self.line;
            let Some(c) = self.next_char() else {
                if buf.is_empty() {
                    return Ok(None);
                }
                return Ok(Some((start, Self::finish(buf, backslash))));
            };
            let newline = c == '\n' || c == '\r';
            if skip_ws {
                if is_ws(c) || (!continued && newline) {
                    continue;
                }
                skip_ws = false;
                continued = false;
            }
            if buf.is_empty() && (c == '#' || c == '!') {
                // A comment runs to the end of its physical line and is never continued.
                while let Some(c) = self.next_char() {
                    if c == '\n' || c == '\r' {
                        break;
                    }
                }
                skip_ws = true;
                continue;
            }
            if !newline {
                if buf.is_empty() {
                    start = at;
                }
                if buf.len() >= MAX_LINE_CHARS {
                    return Err(PropertiesError::LineTooLong { line: start });
                }
                buf.push(c);
                backslash = c == '\\' && !backslash;
                continue;
            }
            if buf.is_empty() {
                skip_ws = true;
                continue;
            }
            if self.chars.peek().is_none() {
                return Ok(Some((start, Self::finish(buf, backslash))));
            }
            if backslash {
                // The backslash before the break is not part of the line.
                buf.pop();
                skip_ws = true;
                continued = true;
                backslash = false;
                if c == '\r' && self.chars.peek() == Some(&'\n') {
                    self.next_char();
                }
            } else {
                return Ok(Some((start, buf)));
            }
        }
    }
}

/// Unescapes a key or value (`\t \n \r \f`, `\uXXXX`, any other `\x` is `x`). Works in UTF-16
/// like Java; an unpaired surrogate (which Java would keep) becomes U+FFFD.
fn load_convert(chars: &[char], line: usize) -> Result<String, PropertiesError> {
    if !chars.contains(&'\\') {
        return Ok(chars.iter().collect());
    }
    let mut units: Vec<u16> = Vec::with_capacity(chars.len());
    let mut i = 0;
    let mut tmp = [0u16; 2];
    while i < chars.len() {
        let mut c = chars[i];
        i += 1;
        if c == '\\' {
            // The line reader never leaves an unescaped backslash last; be total anyway.
            let Some(&e) = chars.get(i) else { break };
            i += 1;
            if e == 'u' {
                let hex = chars
                    .get(i..i + 4)
                    .ok_or(PropertiesError::MalformedUnicode { line })?;
                let mut v: u16 = 0;
                for h in hex {
                    let d = h
                        .to_digit(16)
                        .ok_or(PropertiesError::MalformedUnicode { line })?;
                    v = (v << 4) | d as u16;
                }
                i += 4;
                units.push(v);
                continue;
            }
            c = match e {
                't' => '\t',
                'r' => '\r',
                'n' => '\n',
                'f' => '\x0C',
                other => other,
            };
        }
        units.extend_from_slice(c.encode_utf16(&mut tmp));
    }
    Ok(String::from_utf16_lossy(&units))
}

/// Reads a properties text with `Properties.load(Reader)` semantics: comments (`#`, `!`), key and
/// value separated by `=`, `:` or white space (plus white space around it), line continuations,
/// `\uXXXX` and the other escapes. Returns every entry in file order, repeats included (Java keeps
/// the last). Never panics; a malformed `\u` escape is an error, as in Java.
pub fn read_properties(text: &str) -> Result<Vec<(String, String)>, PropertiesError> {
    let mut lines = LogicalLines::new(text);
    let mut out = Vec::new();
    while let Some((line_no, line)) = lines.next_line()? {
        let mut key_len = 0;
        let mut value_start = line.len();
        let mut has_sep = false;
        let mut backslash = false;
        while key_len < line.len() {
            let c = line[key_len];
            if !backslash && (c == '=' || c == ':') {
                value_start = key_len + 1;
                has_sep = true;
                break;
            }
            if !backslash && is_ws(c) {
                value_start = key_len + 1;
                break;
            }
            backslash = c == '\\' && !backslash;
            key_len += 1;
        }
        while value_start < line.len() {
            let c = line[value_start];
            if !is_ws(c) {
                if !has_sep && (c == '=' || c == ':') {
                    has_sep = true;
                } else {
                    break;
                }
            }
            value_start += 1;
        }
        let key = load_convert(&line[..key_len], line_no)?;
        let value = load_convert(&line[value_start.min(line.len())..], line_no)?;
        out.push((key, value));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// bacula_m365_config.conf

/// Everything the plugin's config file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaculaConfig {
    pub secret: ClientSecret,
    pub appid: AppId,
    /// The service principal's object id (the spec: "Service principal ID of your Application").
    pub objectid: ObjectId,
    pub tenant: TenantId,
    pub certificate_path: String,
    pub certificate_password: PfxPassword,
}

/// The config keys, in the spec's order.
pub const CONFIG_KEYS: [&str; 6] = [
    "secret",
    "appid",
    "objectid",
    "tenant",
    "sharepoint_certificate_path",
    "sharepoint_certificate_password",
];

/// The file's text: `#` + the UTC date, then the six keys in the spec's order.
pub fn render_config(cfg: &BaculaConfig, now_unix: i64) -> String {
    let values = [
        cfg.secret.expose(),
        cfg.appid.as_str(),
        cfg.objectid.as_str(),
        cfg.tenant.as_str(),
        cfg.certificate_path.as_str(),
        cfg.certificate_password.expose(),
    ];
    let pairs: Vec<(&str, &str)> = CONFIG_KEYS.iter().copied().zip(values).collect();
    write_properties(None, &java_date_utc(now_unix), &pairs)
}

/// A config file as read back (renew): every known key optional, unknown keys kept in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedConfig {
    pub secret: Option<ClientSecret>,
    pub appid: Option<AppId>,
    pub objectid: Option<ObjectId>,
    pub tenant: Option<TenantId>,
    pub certificate_path: Option<String>,
    pub certificate_password: Option<PfxPassword>,
    /// Keys the plugin's file does not define (an admin may add their own), in file order.
    pub other: Vec<(String, String)>,
}

impl ParsedConfig {
    /// All six keys present (empty values allowed), as a [`BaculaConfig`].
    pub fn into_config(self) -> Result<BaculaConfig, PropertiesError> {
        Ok(BaculaConfig {
            secret: self.secret.ok_or(PropertiesError::MissingKey("secret"))?,
            appid: self.appid.ok_or(PropertiesError::MissingKey("appid"))?,
            objectid: self
                .objectid
                .ok_or(PropertiesError::MissingKey("objectid"))?,
            tenant: self.tenant.ok_or(PropertiesError::MissingKey("tenant"))?,
            certificate_path: self
                .certificate_path
                .ok_or(PropertiesError::MissingKey("sharepoint_certificate_path"))?,
            certificate_password: self
                .certificate_password
                .ok_or(PropertiesError::MissingKey(
                    "sharepoint_certificate_password",
                ))?,
        })
    }
}

/// Reads a `bacula_m365_config.conf`. Like Java, a repeated key keeps its last value.
pub fn parse_config(text: &str) -> Result<ParsedConfig, PropertiesError> {
    let mut cfg = ParsedConfig::default();
    for (k, v) in read_properties(text)? {
        match k.as_str() {
            "secret" => cfg.secret = Some(ClientSecret::new(v)),
            "appid" => cfg.appid = Some(AppId::new(v)),
            "objectid" => cfg.objectid = Some(ObjectId::new(v)),
            "tenant" => cfg.tenant = Some(TenantId::new(v)),
            "sharepoint_certificate_path" => cfg.certificate_path = Some(v),
            "sharepoint_certificate_password" => {
                cfg.certificate_password = Some(PfxPassword::new(v))
            }
            _ => {
                cfg.other.retain(|(ok, _)| *ok != k);
                cfg.other.push((k, v));
            }
        }
    }
    Ok(cfg)
}

/// A file-system-safe tenant label: ASCII letters, digits, `.`, `_`, `-` kept (lower-cased),
/// anything else `_`; never empty, `.` or `..`.
fn safe_label(label: &str) -> String {
    let s: String = label
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s == "." || s == ".." {
        "tenant".to_string()
    } else {
        s
    }
}

/// The label the plugin uses in paths: the first label of the tenant's initial domain
/// (`contoso` for `contoso.onmicrosoft.com`), else the tenant id.
pub fn tenant_label(initial_domain: Option<&str>, tenant_id: &str) -> String {
    match initial_domain
        .and_then(|d| d.trim().split('.').next())
        .filter(|l| !l.is_empty())
    {
        Some(l) => safe_label(l),
        None => safe_label(tenant_id),
    }
}

/// The directory for one tenant's files: `template` with `{tenant}` replaced (a blank template
/// means [`DEFAULT_CONFIG_DIR_TEMPLATE`]); the label is made path-safe, a trailing `/` dropped.
pub fn config_dir_for(template: &str, tenant_label: &str) -> String {
    let template = if template.trim().is_empty() {
        DEFAULT_CONFIG_DIR_TEMPLATE
    } else {
        template.trim()
    };
    let dir = template.replace("{tenant}", &safe_label(tenant_label));
    match dir.trim_end_matches('/') {
        "" => "/".to_string(),
        d => d.to_string(),
    }
}

/// `{config_dir_for(..)}/bacula_m365_config.conf`.
pub fn config_path_for(template: &str, tenant_label: &str) -> String {
    let dir = config_dir_for(template, tenant_label);
    if dir.ends_with('/') {
        format!("{dir}{CONFIG_FILE_NAME}")
    } else {
        format!("{dir}/{CONFIG_FILE_NAME}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(java_date_utc(0), "Thu Jan 01 00:00:00 UTC 1970");
        // The spec's example, 12:30:34 CEST = 10:30:34 UTC.
        assert_eq!(java_date_utc(1_625_135_434), "Thu Jul 01 10:30:34 UTC 2021");
        assert_eq!(java_date_utc(951_782_400), "Tue Feb 29 00:00:00 UTC 2000");
        assert_eq!(java_date_utc(-1), "Wed Dec 31 23:59:59 UTC 1969");
        assert_eq!(java_date_utc(4_102_444_799), "Thu Dec 31 23:59:59 UTC 2099");
        // Total on extreme input.
        let _ = java_date_utc(i64::MAX);
        let _ = java_date_utc(i64::MIN);
    }

    #[test]
    fn escapes() {
        assert_eq!(escape_key("a b:c=d#e!f\\"), "a\\ b\\:c\\=d\\#e\\!f\\\\");
        assert_eq!(escape_value("  a b "), "\\  a b ");
        assert_eq!(
            escape_value("\t\n\r\x0C\x01\x7F"),
            "\\t\\n\\r\\f\\u0001\\u007F"
        );
        assert_eq!(escape_value("é日😀"), "\\u00E9\\u65E5\\uD83D\\uDE00");
        assert_eq!(escape_value("~[]@+<>?"), "~[]@+<>?");
        assert_eq!(escape_value(""), "");
    }

    #[test]
    fn writer_shape() {
        let t = write_properties(Some("a\nb\r\n#c"), "DATE", &[("k", "v"), ("x y", " z")]);
        assert_eq!(t, "#a\n#b\n#c\n#DATE\nk=v\nx\\ y=\\ z\n");
    }

    #[test]
    fn reader_semantics() {
        let text = "# c\n! c\n  a = 1\nb:2\nc 3\nd\t=\t4 \\\n   5\ne\\\r\n  f=6\ng\n\\ h\\=i=j\\u00e9\\\\\n";
        let got = read_properties(text).unwrap_or_default();
        let want = [
            ("a", "1"),
            ("b", "2"),
            ("c", "3"),
            ("d", "4 5"),
            ("ef", "6"),
            ("g", ""),
            (" h=i", "jé\\"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(
            read_properties("a=\\u12"),
            Err(PropertiesError::MalformedUnicode { line: 1 })
        );
        assert_eq!(
            read_properties("x=1\ny=\\uZZZZ"),
            Err(PropertiesError::MalformedUnicode { line: 2 })
        );
        // Java's odd corners: a lone backslash at the end is an empty entry; `\` + newline then
        // a `#` line is still a comment; a comment never continues.
        assert_eq!(
            read_properties("\\"),
            Ok(vec![(String::new(), String::new())])
        );
        assert_eq!(
            read_properties("#a\\\nb=c"),
            Ok(vec![("b".into(), "c".into())])
        );
        assert_eq!(read_properties(""), Ok(vec![]));
        assert_eq!(
            read_properties("\\uD83D\\uDE00=\\uD800"),
            Ok(vec![("😀".into(), "\u{FFFD}".into())])
        );
    }

    #[test]
    fn round_trip_tricky() {
        let vals = [
            "C:\\Program Files\\Bacula\\m365\\x.pfx",
            "  lead",
            "a=b:c#d!e",
            "tab\there\nnl\r\n",
            "é 日本 😀",
            "\\u0041",
            "",
        ];
        for v in vals {
            let t = write_properties(None, "d", &[(v, v)]);
            assert_eq!(
                read_properties(&t),
                Ok(vec![(v.to_string(), v.to_string())]),
                "{v:?}"
            );
        }
    }

    fn sample() -> BaculaConfig {
        BaculaConfig {
            secret: ClientSecret::new("s3:cr=t#!"),
            appid: AppId::new("1587ba33-8eef-4512-bab1-6d65fd393f51"),
            objectid: ObjectId::new("8a4c8705-0101-4ee6-b2aa-c3a1b21b5b91"),
            tenant: TenantId::new("e4a1df55-de8a-4a83-945a-bfaabb6fa166"),
            certificate_path: "/opt/bacula/etc/m365/example/cert.pfx".into(),
            certificate_password: PfxPassword::new("fAG@2O5PoOSSU<j2u65zqEKIN<Dh~ya3AWKqK]vv"),
        }
    }

    #[test]
    fn config_round_trip() {
        let cfg = sample();
        let text = render_config(&cfg, 1_625_135_434);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "#Thu Jul 01 10:30:34 UTC 2021");
        assert_eq!(lines[1], "secret=s3\\:cr\\=t\\#\\!");
        assert_eq!(
            lines[6],
            "sharepoint_certificate_password=fAG@2O5PoOSSU<j2u65zqEKIN<Dh~ya3AWKqK]vv"
        );
        let keys: Vec<&str> = lines[1..]
            .iter()
            .filter_map(|l| l.split('=').next())
            .collect();
        assert_eq!(keys, CONFIG_KEYS);
        let parsed = parse_config(&text).map(ParsedConfig::into_config);
        assert_eq!(parsed, Ok(Ok(cfg)));
        let partial = parse_config("secret=x\nfoo=1\nfoo=2\n");
        let partial = partial.unwrap_or_default();
        assert_eq!(partial.other, vec![("foo".to_string(), "2".to_string())]);
        assert_eq!(
            partial.into_config(),
            Err(PropertiesError::MissingKey("appid"))
        );
    }

    #[test]
    fn paths() {
        assert_eq!(
            config_dir_for("", "contoso"),
            "/opt/bacula/etc/m365/contoso"
        );
        assert_eq!(config_dir_for("/srv/{tenant}/", "Contoso"), "/srv/contoso");
        assert_eq!(
            config_dir_for(DEFAULT_CONFIG_DIR_TEMPLATE, "../x"),
            "/opt/bacula/etc/m365/.._x"
        );
        assert_eq!(config_dir_for("/a/{tenant}", ".."), "/a/tenant");
        assert_eq!(
            config_path_for("", "contoso"),
            "/opt/bacula/etc/m365/contoso/bacula_m365_config.conf"
        );
        assert_eq!(
            tenant_label(Some("BaculaEnterprise.onmicrosoft.com"), "x"),
            "baculaenterprise"
        );
        assert_eq!(tenant_label(None, "e4a1df55-de8a"), "e4a1df55-de8a");
    }
}
