//! Real peer: Java 17's `java.util.Properties` reads what `engine::properties` writes, writes what
//! it escapes, and reads tricky text the way our reader does. Needs `java` on PATH; without it
//! every test here fails (never skips). Helper: `tests/peers/PropertiesPeer.java`, launched as a
//! single-file source program (no build step), many cases per JVM start.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use m365_registrator::engine::properties::{
    escape_key, escape_value, java_date_utc, read_properties, render_config, write_properties,
    BaculaConfig, CONFIG_KEYS,
};
use m365_registrator::engine::secret::{AppId, ClientSecret, ObjectId, PfxPassword, TenantId};

// ---------------------------------------------------------------------------------------------
// Running the Java peer

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex from the peer"))
        .collect()
}

fn hex_units(s: &str) -> String {
    s.encode_utf16().map(|u| format!("{u:04x}")).collect()
}

fn unhex_units(h: &str) -> Vec<u16> {
    (0..h.len() / 4)
        .map(|i| u16::from_str_radix(&h[4 * i..4 * i + 4], 16).expect("hex from the peer"))
        .collect()
}

/// Runs the peer in `mode` over `items` (one per line) in one JVM; one output line per item.
fn run_java(mode: &str, items: &[String]) -> Vec<String> {
    static N: AtomicUsize = AtomicUsize::new(0);
    match Command::new("java").arg("-version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "`java -version` failed ({}): the Java peer tests need Java 17 on PATH",
            o.status
        ),
        Err(e) => panic!(
            "cannot run `java` ({e}): the Java peer tests need Java 17 on PATH (apt-get install \
             openjdk-17-jdk-headless); they never skip"
        ),
    }
    let dir = std::env::temp_dir().join(format!(
        "peer_properties_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input = dir.join(format!("{mode}.txt"));
    let mut text = items.join("\n");
    text.push('\n');
    std::fs::write(&input, text).expect("write peer input");
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/PropertiesPeer.java");
    let out = Command::new("java")
        .arg(&source)
        .arg(mode)
        .arg(&input)
        .output()
        .expect("run java");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "java PropertiesPeer {mode} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("ASCII from the peer");
    let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    assert_eq!(
        lines.len(),
        items.len(),
        "one answer per item from the peer ({mode})"
    );
    lines
}

/// What Java's `load` put, in order, as UTF-16 units; `None` when it threw.
type JavaPuts = Option<Vec<(Vec<u16>, Vec<u16>)>>;

fn parse_load_line(line: &str) -> JavaPuts {
    let mut parts = line.split(' ');
    match parts.next() {
        Some("ok") => Some(
            parts
                .map(|kv| {
                    let (k, v) = kv.split_once(':').expect("k:v from the peer");
                    (unhex_units(k), unhex_units(v))
                })
                .collect(),
        ),
        Some("err") => None,
        other => panic!("unexpected peer line {other:?}"),
    }
}

/// Java `load(Reader)` (or `load(InputStream)` when `stream`) of each document.
fn java_load(docs: &[String], stream: bool) -> Vec<JavaPuts> {
    let items: Vec<String> = docs.iter().map(|d| hex(d.as_bytes())).collect();
    let mode = if stream { "load-stream" } else { "load-reader" };
    run_java(mode, &items)
        .iter()
        .map(|l| parse_load_line(l))
        .collect()
}

fn units_pairs(pairs: &[(String, String)]) -> Vec<(Vec<u16>, Vec<u16>)> {
    pairs
        .iter()
        .map(|(k, v)| (k.encode_utf16().collect(), v.encode_utf16().collect()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Random strings (xorshift64*, seeded: failures reproduce)

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn char_in(&mut self, lo: u32, hi: u32) -> char {
        loop {
            if let Some(c) = char::from_u32(lo + self.below(u64::from(hi - lo + 1)) as u32) {
                return c;
            }
        }
    }
    /// A string mixing every class of character `store` treats differently.
    fn string(&mut self) -> String {
        let len = self.below(24);
        let mut s = String::new();
        for _ in 0..len {
            match self.below(10) {
                0 | 1 => s.push_str(self.pick(&[
                    " ", "\\", ":", "=", "#", "!", "~", "[", "]", "@", "+", "\t", "\n", "\r",
                    "\x0c", "\r\n", "\\u00e9", "\\n", "  ",
                ])),
                2..=4 => s.push(self.char_in(0x20, 0x7e)),
                5 => s.push(self.char_in(0x00, 0x1f)),
                6 => s.push(self.char_in(0x7f, 0xff)),
                7 => s.push(self.char_in(0x100, 0xfffd)),
                8 => s.push(self.char_in(0x10000, 0x10ffff)),
                _ => s.push_str(self.pick(&["é", "日本", "😀", "C:\\Program Files\\", "\u{feff}"])),
            }
        }
        s
    }
}

fn tricky_values() -> Vec<String> {
    [
        "C:\\Program Files\\Bacula\\m365\\x.pfx",
        "\\ : = # ! ~ [ ] @ +",
        "  two leading spaces",
        " ",
        "trailing spaces  ",
        "tab\there",
        "line\nbreak\r\nand\rcr",
        "é 日本 😀",
        "fAG@2O5PoOSSU<j2u65zqEKIN<Dh~ya3AWKqK]vv",
        "#not a comment",
        "!not a comment",
        "=starts with equals",
        ":starts with colon",
        "ends with backslash\\",
        "\\u0041 literal escape text",
        "\u{0}\u{7f}\u{80}\u{ff}\u{100}\u{ffff}\u{10ffff}",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

// ---------------------------------------------------------------------------------------------
// (1) The config file, read back by Java

#[test]
fn java_reads_rendered_config_exactly() {
    let values = tricky_values();
    let mut docs = Vec::new();
    let mut expected = Vec::new();
    // Each tricky value in every position, so each key's escaping is exercised too.
    for (i, v) in values.iter().enumerate() {
        let w = &values[(i + 1) % values.len()];
        let cfg = BaculaConfig {
            secret: ClientSecret::new(v.clone()),
            appid: AppId::new(w.clone()),
            objectid: ObjectId::new(format!("{v}{w}")),
            tenant: TenantId::new(w.clone()),
            certificate_path: v.clone(),
            certificate_password: PfxPassword::new(w.clone()),
        };
        let text = render_config(&cfg, 1_625_135_434 + i as i64);
        assert!(text.is_ascii());
        assert!(text.starts_with('#'));
        let vals = [
            v.clone(),
            w.clone(),
            format!("{v}{w}"),
            w.clone(),
            v.clone(),
            w.clone(),
        ];
        let pairs: Vec<(String, String)> = CONFIG_KEYS
            .iter()
            .map(|k| k.to_string())
            .zip(vals)
            .collect();
        docs.push(text);
        expected.push(pairs);
    }
    for stream in [true, false] {
        let got = java_load(&docs, stream);
        for ((doc, want), got) in docs.iter().zip(&expected).zip(got) {
            assert_eq!(
                got,
                Some(units_pairs(want)),
                "stream={stream}, document:\n{doc}"
            );
        }
    }
    for (doc, want) in docs.iter().zip(&expected) {
        assert_eq!(read_properties(doc).as_ref(), Ok(want));
    }
}

// ---------------------------------------------------------------------------------------------
// (2) Property test: random keys/values through our writer and Java's reader

#[test]
fn java_reads_random_documents() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut docs = Vec::new();
    let mut expected = Vec::new();
    let mut strings = 0;
    while strings < 2400 {
        let n = 1 + rng.below(4) as usize;
        let pairs: Vec<(String, String)> = (0..n).map(|_| (rng.string(), rng.string())).collect();
        strings += 2 * n;
        let comment = (rng.below(3) == 0).then(|| rng.string());
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let date = java_date_utc(rng.below(4_000_000_000) as i64);
        docs.push(write_properties(comment.as_deref(), &date, &refs));
        expected.push(pairs);
    }
    let got = java_load(&docs, true);
    let mut failures = 0;
    for ((doc, want), got) in docs.iter().zip(&expected).zip(&got) {
        if got.as_ref() != Some(&units_pairs(want)) {
            failures += 1;
            eprintln!("mismatch for {doc:?}: java {got:?}");
        }
        assert_eq!(
            read_properties(doc).as_ref(),
            Ok(want),
            "our reader on {doc:?}"
        );
    }
    assert_eq!(
        failures,
        0,
        "{failures} of {} documents read differently by Java",
        docs.len()
    );
}

// ---------------------------------------------------------------------------------------------
// (3) Our escaping equals Java's store(OutputStream) byte for byte

#[test]
fn escaping_equals_java_store() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut strings = tricky_values();
    while strings.len() < 2500 {
        strings.push(rng.string());
    }
    let items: Vec<String> = strings.iter().map(|s| hex_units(s)).collect();
    let lines = run_java("store", &items);
    let mut failures = 0;
    for (s, line) in strings.iter().zip(&lines) {
        let (v, k) = line.split_once(' ').expect("two fields from the peer");
        let java_value = String::from_utf8(unhex(v)).expect("ASCII");
        let java_key = String::from_utf8(unhex(k)).expect("ASCII");
        let ours_value = format!("k={}", escape_value(s));
        let ours_key = format!("{}=", escape_key(s));
        if java_value != ours_value || java_key != ours_key {
            failures += 1;
            eprintln!(
                "{s:?}: java {java_value:?} / {java_key:?}, ours {ours_value:?} / {ours_key:?}"
            );
        }
    }
    assert_eq!(
        failures,
        0,
        "{failures} of {} strings escaped differently",
        strings.len()
    );
}

// ---------------------------------------------------------------------------------------------
// (4) Our reader agrees with Java's load on tricky text

fn hand_written_inputs() -> Vec<String> {
    [
        "a=b",
        "a = b",
        "a:b",
        "a : b",
        "a b",
        "a\tb",
        "a\x0cb",
        "a   =   b  ",
        "a=:b",
        "a:=b",
        "a = = b",
        "a  b c",
        "a\\ b=c",
        "a\\=b=c",
        "a\\:b:c",
        "key",
        "key=",
        "=value",
        ":value",
        " value",
        "# comment\n! comment\na=b",
        "   # indented comment\na=b",
        "a=b\\\n   c",
        "a=b\\\r\n   c",
        "a=b\\\r   c",
        "a=b\\\\\nc=d",
        "a=b\\\\\\\nc",
        "a=b\\",
        "a=b\\\n",
        "a=b\\\n\n c=d",
        "a=b\\\n# not a comment\n",
        "#a\\\nb=c",
        "\\",
        "\\\n",
        "\\\n\n",
        "\\\n#c\nx=y",
        "\\\n  \\\n k = v",
        "a=\\u0041\\u00e9\\u65e5\\uD83D\\uDE00",
        "a=\\u004",
        "a=\\u004g",
        "a=\\uD83D",
        "\\u0061\\u003d=b",
        "a=\\t\\n\\r\\f\\b\\x\\\\",
        "a=é日本😀",
        "\r\n\r\na=b\r\n\r\nc=d\r\n",
        "a=b\rc=d\ne=f\r\ng=h",
        "a=b\n\\\n\n c=d",
        "  \t\x0c a = b",
        "a=b\\ \nc",
        "dup=1\ndup=2",
        "",
        "\n\n\n",
        "#only a comment",
        "!",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn random_inputs(rng: &mut Rng, n: usize) -> Vec<String> {
    let tokens = [
        "\\", "\\\\", "\n", "\r", "\r\n", " ", "\t", "\x0c", "=", ":", "#", "!", "a", "b", "k",
        "\\u0041", "\\u00", "\\uzzzz", "\\uD800", "\\n", "é", "😀", "\\\n", "\\\r\n", "\\ ",
    ];
    (0..n)
        .map(|_| {
            let len = rng.below(16);
            (0..len).map(|_| rng.pick(&tokens)).collect::<String>()
        })
        .collect()
}

#[test]
fn reader_agrees_with_java_load() {
    let mut rng = Rng(0xA076_1D64_78BD_642F);
    let mut inputs = hand_written_inputs();
    let hand = inputs.len();
    inputs.extend(random_inputs(&mut rng, 3000));
    let java = java_load(&inputs, false);
    let mut failures = 0;
    for (i, (input, java)) in inputs.iter().zip(&java).enumerate() {
        let ours = read_properties(input);
        // An unpaired surrogate from `\uD800` has no Rust `String`: ours holds U+FFFD there.
        let java_lossy: Option<Vec<(String, String)>> = java.as_ref().map(|puts| {
            puts.iter()
                .map(|(k, v)| (String::from_utf16_lossy(k), String::from_utf16_lossy(v)))
                .collect()
        });
        if ours.as_ref().ok() != java_lossy.as_ref() {
            failures += 1;
            let which = if i < hand { "hand-written" } else { "random" };
            eprintln!("{which} {input:?}: java {java_lossy:?}, ours {ours:?}");
        }
    }
    assert_eq!(
        failures,
        0,
        "{failures} of {} inputs read differently",
        inputs.len()
    );
}

// ---------------------------------------------------------------------------------------------
// (5) The date line equals Java's Date.toString() in UTC

#[test]
fn date_equals_java_date_to_string() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let mut secs: Vec<i64> = vec![
        0,
        -1,
        1_625_135_434,
        951_782_400,
        951_868_799,
        4_102_444_799,
        253_402_300_799,
        -2_208_988_800,
    ];
    while secs.len() < 300 {
        secs.push(rng.below(8_000_000_000) as i64 - 1_000_000_000);
    }
    let items: Vec<String> = secs.iter().map(|s| s.to_string()).collect();
    let java = run_java("date", &items);
    for (s, j) in secs.iter().zip(&java) {
        assert_eq!(&java_date_utc(*s), j, "unix {s}");
    }
}
