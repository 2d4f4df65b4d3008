//! The string formats the API server checks (`k8s.io/kube-openapi/pkg/validation/strfmt`), each
//! with a check that follows strfmt's. Any other `format` (`int32`, `int64`, `float`, `double`,
//! ...) is an annotation only, as in the API server.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use base64::Engine as _;
use regex::Regex;

pub(super) type FormatCheck = fn(&str) -> bool;

/// The formats the API server validates, each with its check. Any other `format` is an
/// annotation only.
pub(super) const FORMATS: &[(&str, FormatCheck)] = &[
    ("bsonobjectid", is_bson_object_id),
    ("uri", is_uri),
    ("email", is_email),
    ("hostname", is_hostname),
    ("ipv4", is_ipv4),
    ("ipv6", is_ipv6),
    ("cidr", is_cidr),
    ("mac", is_mac),
    ("uuid", is_uuid),
    ("uuid3", is_uuid3),
    ("uuid4", is_uuid4),
    ("uuid5", is_uuid5),
    ("isbn", is_isbn),
    ("isbn10", is_isbn10),
    ("isbn13", is_isbn13),
    ("creditcard", is_credit_card),
    ("ssn", is_ssn),
    ("hexcolor", is_hex_color),
    ("rgbcolor", is_rgb_color),
    ("byte", is_base64),
    ("password", is_anything),
    ("date", is_date),
    ("duration", is_duration),
    ("datetime", is_date_time),
    ("date-time", is_date_time),
];

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("built-in format pattern compiles")
}

static HOSTNAME: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$",
    )
});
static UUID: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"));
static UUID3: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$")
});
static UUID4: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static UUID5: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$")
});
static HEX_COLOR: LazyLock<Regex> = LazyLock::new(|| re(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"));
static RGB_COLOR: LazyLock<Regex> = LazyLock::new(|| {
    let c = r"(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])";
    re(&format!(r"^rgb\(\s*{c}\s*,\s*{c}\s*,\s*{c}\s*\)$"))
});
static SSN: LazyLock<Regex> = LazyLock::new(|| re(r"^\d{3}[- ]?\d{2}[- ]?\d{4}$"));
static DATE_TIME: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(:(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
});
static DATE: LazyLock<Regex> = LazyLock::new(|| re(r"^(\d{4})-(\d{2})-(\d{2})$"));
static DURATION_WORDS: LazyLock<Regex> = LazyLock::new(|| re(r"(\d+)\s*([A-Za-zµ]+)"));

fn is_anything(_: &str) -> bool {
    true
}

fn is_bson_object_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Lenient, as Go's `url.Parse`: no control characters, well-formed `%` escapes.
fn is_uri(s: &str) -> bool {
    if s.chars().any(|c| c.is_control()) {
        return false;
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// As Go's `mail.ParseAddress`, roughly: `local@domain`, optionally as `Name <local@domain>`.
fn is_email(s: &str) -> bool {
    let addr = match (s.rfind('<'), s.ends_with('>')) {
        (Some(i), true) => &s[i + 1..s.len() - 1],
        _ => s.trim(),
    };
    let Some((local, domain)) = addr.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !addr.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

fn is_hostname(s: &str) -> bool {
    HOSTNAME.is_match(s) && s.len() <= 255 && s.split('.').all(|p| p.len() <= 63)
}

fn is_ipv4(s: &str) -> bool {
    s.parse::<Ipv4Addr>().is_ok()
}

fn is_ipv6(s: &str) -> bool {
    s.contains(':') && s.parse::<IpAddr>().is_ok()
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    if ip.parse::<Ipv4Addr>().is_ok() {
        bits <= 32
    } else if ip.parse::<Ipv6Addr>().is_ok() {
        bits <= 128
    } else {
        false
    }
}

/// Go's `net.ParseMAC`: 6, 8 or 20 octets as `xx:xx..`, `xx-xx..` or `xxxx.xxxx..`.
fn is_mac(s: &str) -> bool {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    let octets_ok = |n: usize| matches!(n, 6 | 8 | 20);
    if s.contains(':') || s.contains('-') {
        let sep = if s.contains(':') { ':' } else { '-' };
        let parts: Vec<&str> = s.split(sep).collect();
        octets_ok(parts.len()) && parts.iter().all(|p| hex(p, 2))
    } else if s.contains('.') {
        let parts: Vec<&str> = s.split('.').collect();
        octets_ok(parts.len() * 2) && parts.iter().all(|p| hex(p, 4))
    } else {
        false
    }
}

fn is_uuid(s: &str) -> bool {
    UUID.is_match(s)
}
fn is_uuid3(s: &str) -> bool {
    UUID3.is_match(s)
}
fn is_uuid4(s: &str) -> bool {
    UUID4.is_match(s)
}
fn is_uuid5(s: &str) -> bool {
    UUID5.is_match(s)
}

fn strip_dashes_spaces(s: &str) -> String {
    s.chars().filter(|c| *c != '-' && *c != ' ').collect()
}

fn is_isbn10(s: &str) -> bool {
    let s = strip_dashes_spaces(s);
    let b = s.as_bytes();
    if b.len() != 10
        || !b[..9].iter().all(u8::is_ascii_digit)
        || !(b[9].is_ascii_digit() || b[9] == b'X')
    {
        return false;
    }
    let sum: u32 = b
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let d = if *c == b'X' { 10 } else { u32::from(c - b'0') };
            (i as u32 + 1) * d
        })
        .sum();
    sum.is_multiple_of(11)
}

fn is_isbn13(s: &str) -> bool {
    let s = strip_dashes_spaces(s);
    let b = s.as_bytes();
    if b.len() != 13 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let sum: u32 = b
        .iter()
        .enumerate()
        .map(|(i, c)| u32::from(c - b'0') * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    sum.is_multiple_of(10)
}

fn is_isbn(s: &str) -> bool {
    is_isbn10(s) || is_isbn13(s)
}

/// Luhn over 12 to 19 digits (dashes and spaces ignored).
fn is_credit_card(s: &str) -> bool {
    let s = strip_dashes_spaces(s);
    if !(12..=19).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = s
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let d = u32::from(c - b'0');
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

fn is_ssn(s: &str) -> bool {
    SSN.is_match(s)
}
fn is_hex_color(s: &str) -> bool {
    HEX_COLOR.is_match(s)
}
fn is_rgb_color(s: &str) -> bool {
    RGB_COLOR.is_match(s)
}

fn is_base64(s: &str) -> bool {
    let cleaned: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    base64::engine::general_purpose::STANDARD
        .decode(cleaned)
        .is_ok()
}

fn valid_ymd(y: &str, m: &str, d: &str) -> bool {
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<u32>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

fn is_date(s: &str) -> bool {
    DATE.captures(s)
        .is_some_and(|c| valid_ymd(&c[1], &c[2], &c[3]))
}

/// RFC 3339 and the ISO 8601 variants strfmt's `ParseDateTime` accepts (no zone = local time,
/// minutes-only precision, `+hhmm` zones).
fn is_date_time(s: &str) -> bool {
    let Some(c) = DATE_TIME.captures(s) else {
        return false;
    };
    let num = |i: usize| c.get(i).map_or(Some(0), |m| m.as_str().parse::<u32>().ok());
    if !valid_ymd(&c[1], &c[2], &c[3]) {
        return false;
    }
    matches!((num(4), num(5), num(7)), (Some(h), Some(m), Some(sec)) if h < 24 && m < 60 && sec < 60)
        && c.get(9).is_none_or(|z| {
            let z = z.as_str();
            if z == "Z" {
                return true;
            }
            let digits: String = z[1..].chars().filter(char::is_ascii_digit).collect();
            digits.len() == 4
                && digits[..2].parse::<u32>().is_ok_and(|h| h < 24)
                && digits[2..].parse::<u32>().is_ok_and(|m| m < 60)
        })
}

/// Go's `time.ParseDuration` grammar: `[-+]` then `(number unit)+`, or `0`.
fn is_go_duration(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    if s == "0" {
        return true;
    }
    if s.is_empty() {
        return false;
    }
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
            .map_or(rest.len(), |(i, _)| i);
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return false;
        }
        rest = &rest[num_len..];
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(rest.len(), |(i, _)| i);
        let unit = &rest[..unit_len];
        if !matches!(unit, "ns" | "us" | "µs" | "μs" | "ms" | "s" | "m" | "h") {
            return false;
        }
        rest = &rest[unit_len..];
    }
    true
}

/// strfmt's `ParseDuration`: a Go duration, or any `<n> <unit>` run with a known unit
/// (`5 days`, `2 weeks`, `10min`).
fn is_duration(s: &str) -> bool {
    if is_go_duration(s) {
        return true;
    }
    const UNITS: [&[&str]; 8] = [
        &["ns", "nano"],
        &["us", "µs", "micro"],
        &["ms", "milli"],
        &["s", "sec"],
        &["m", "min"],
        &["h", "hr", "hour"],
        &["d", "day"],
        &["w", "wk", "week"],
    ];
    DURATION_WORDS.captures_iter(s).any(|c| {
        let unit = c[2].to_lowercase();
        UNITS.iter().any(|variants| {
            let last = variants.len() - 1;
            variants
                .iter()
                .enumerate()
                .any(|(i, v)| (i == last && unit.starts_with(v)) || unit == *v)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::fixtures::compile;
    use serde_json::json;

    #[test]
    fn formats_table() {
        // (format, valid, invalid)
        let cases: &[(&str, &[&str], &[&str])] = &[
            (
                "date-time",
                &[
                    "2024-01-02T03:04:05Z",
                    "2024-01-02T03:04:05.123+02:00",
                    "2024-02-29T00:00:00Z",
                    "2024-01-02T03:04:05",
                ],
                &[
                    "2024-01-02",
                    "2023-02-29T00:00:00Z",
                    "2024-01-02T25:00:00Z",
                    "x",
                ],
            ),
            ("date", &["2024-01-31"], &["2024-04-31", "2024-1-1"]),
            (
                "duration",
                &["1h30m", "-5s", "0", "300ms", "3 days", "2weeks"],
                &["", "5", "abc", "1x"],
            ),
            (
                "email",
                &["a@b.com", "Joe <joe@x.org>"],
                &["a", "@b", "a@", "a b@c"],
            ),
            (
                "hostname",
                &["example.com", "a", "my-host.internal"],
                &["-a", "a_b.com", "a..b"],
            ),
            ("ipv4", &["10.0.0.1"], &["10.0.0", "::1", "256.1.1.1"]),
            (
                "ipv6",
                &["::1", "fe80::1", "::ffff:1.2.3.4"],
                &["1.2.3.4", "x::"],
            ),
            (
                "cidr",
                &["10.0.0.0/8", "fd00::/64"],
                &["10.0.0.0", "10.0.0.0/33"],
            ),
            (
                "mac",
                &["00:11:22:33:44:55", "00-11-22-33-44-55", "0011.2233.4455"],
                &["00:11:22", "zz:11:22:33:44:55"],
            ),
            (
                "uuid",
                &["123e4567-e89b-12d3-a456-426614174000"],
                &["123e4567"],
            ),
            (
                "uuid4",
                &["123e4567-e89b-42d3-a456-426614174000"],
                &["123e4567-e89b-12d3-a456-426614174000"],
            ),
            ("byte", &["aGVsbG8=", ""], &["not base64!"]),
            ("hexcolor", &["#fff", "a0b1c2"], &["#ffff"]),
            ("rgbcolor", &["rgb(0, 128, 255)"], &["rgb(256,0,0)"]),
            ("isbn", &["0306406152", "978-0306406157"], &["0306406153"]),
            (
                "uri",
                &["https://example.com/a?b=c", "relative/path"],
                &["http://x/%zz"],
            ),
            ("int32", &["anything"], &[]), // not checked by the API server
            ("password", &["anything"], &[]),
        ];
        for (format, good, bad) in cases {
            let schema = compile(
                &json!({"type": "object", "properties": {"v": {"type": "string", "format": format}}}),
            );
            for v in *good {
                let errs = schema.validate(&json!({"v": v}));
                assert!(errs.is_empty(), "{format}: {v:?} should be valid: {errs:?}");
            }
            for v in *bad {
                let errs = schema.validate(&json!({"v": v}));
                assert_eq!(errs.len(), 1, "{format}: {v:?} should be invalid");
            }
        }
    }

    #[test]
    fn duration_parsing() {
        for ok in ["1h", "1.5h", "2h45m", "1µs", "+3s"] {
            assert!(is_go_duration(ok), "{ok}");
        }
        for bad in ["h", "1", "1.2.3s", "1hh"] {
            assert!(!is_go_duration(bad), "{bad}");
        }
    }

    #[test]
    fn check_digits_of_isbns_and_credit_cards() {
        assert!(is_isbn10("0-306-40615-2"));
        assert!(is_isbn10("080442957X"));
        assert!(!is_isbn10("0306406153"));
        assert!(is_isbn13("978 0 306 40615 7"));
        assert!(!is_isbn13("9780306406158"));
        assert!(is_credit_card("4111 1111 1111 1111"));
        assert!(!is_credit_card("4111 1111 1111 1112"));
        assert!(!is_credit_card("4111"));
    }

    #[test]
    fn dates_know_the_calendar() {
        assert!(valid_ymd("2000", "02", "29")); // divisible by 400
        assert!(!valid_ymd("1900", "02", "29")); // by 100, not 400
        assert!(!valid_ymd("2024", "13", "01"));
        assert!(is_date_time("2024-01-02T03:04+0130"));
        assert!(!is_date_time("2024-01-02T03:04:05+25:00"));
    }

    #[test]
    fn every_format_is_named_once() {
        let mut names: Vec<&str> = FORMATS.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count);
        assert!(FORMATS.iter().all(|(_, check)| check("") || !check("")));
    }
}
