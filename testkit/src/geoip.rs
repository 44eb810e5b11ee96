//! A tiny writer of MaxMind DB files (the format `GATEHOUSE_GEOIP_DB` reads), enough for tests:
//! an IPv4 database placing one network in a city and country, as GeoLite2-City records do
//! (`city.names.en`, `country.names.en`, `country.iso_code`). Format: a binary search tree of
//! 24-bit records, 16 zero bytes, the data section, then the metadata after its marker
//! (<https://maxmind.github.io/MaxMind-DB/>).

/// A data-section value.
enum Value<'a> {
    Str(&'a str),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(&'a str, Value<'a>)>),
    Array(Vec<Value<'a>>),
}

fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    // Sizes below 29 fit in the control byte (all this writer needs).
    assert!(size < 29, "value too large for this writer");
    if kind <= 7 {
        out.push((kind << 5) | size as u8);
    } else {
        out.push(size as u8);
        out.push(kind - 7);
    }
}

fn uint(out: &mut Vec<u8>, kind: u8, value: u64, width: usize) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(8);
    let used = &bytes[skip..];
    assert!(used.len() <= width);
    control(out, kind, used.len());
    out.extend_from_slice(used);
}

fn encode(out: &mut Vec<u8>, value: &Value<'_>) {
    match value {
        Value::Str(s) => {
            control(out, 2, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::U16(v) => uint(out, 5, u64::from(*v), 2),
        Value::U32(v) => uint(out, 6, u64::from(*v), 4),
        Value::U64(v) => uint(out, 9, *v, 8),
        Value::Map(entries) => {
            control(out, 7, entries.len());
            for (key, value) in entries {
                encode(out, &Value::Str(key));
                encode(out, value);
            }
        }
        Value::Array(items) => {
            control(out, 11, items.len());
            for item in items {
                encode(out, item);
            }
        }
    }
}

fn names(english: &str) -> Value<'_> {
    Value::Map(vec![("en", Value::Str(english))])
}

/// An IPv4 City database in which `network`/`prefix` is in `city`, `country` (ISO code `iso`);
/// every other address is unknown.
pub fn city_database(
    network: [u8; 4],
    prefix: u8,
    city: &str,
    country: &str,
    iso: &str,
) -> Vec<u8> {
    assert!((1..=32).contains(&prefix));
    let node_count = u32::from(prefix);
    let bits = u32::from_be_bytes(network);
    let mut out = Vec::new();
    // One node per bit of the prefix: the prefix's side leads on, the other side is empty.
    for depth in 0..node_count {
        let bit = (bits >> (31 - depth)) & 1;
        let on = if depth + 1 == node_count {
            // A data pointer: the data section offset (0) + node count + 16.
            node_count + 16
        } else {
            depth + 1
        };
        let (left, right) = if bit == 0 {
            (on, node_count)
        } else {
            (node_count, on)
        };
        out.extend_from_slice(&left.to_be_bytes()[1..]);
        out.extend_from_slice(&right.to_be_bytes()[1..]);
    }
    out.extend_from_slice(&[0u8; 16]);
    encode(
        &mut out,
        &Value::Map(vec![
            ("city", Value::Map(vec![("names", names(city))])),
            (
                "country",
                Value::Map(vec![
                    ("iso_code", Value::Str(iso)),
                    ("names", names(country)),
                ]),
            ),
        ]),
    );
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    encode(
        &mut out,
        &Value::Map(vec![
            ("binary_format_major_version", Value::U16(2)),
            ("binary_format_minor_version", Value::U16(0)),
            ("build_epoch", Value::U64(1_764_892_800)),
            ("database_type", Value::Str("GeoLite2-City")),
            (
                "description",
                Value::Map(vec![("en", Value::Str("Gatehouse test database"))]),
            ),
            ("ip_version", Value::U16(4)),
            ("languages", Value::Array(vec![Value::Str("en")])),
            ("node_count", Value::U32(node_count)),
            ("record_size", Value::U16(24)),
        ]),
    );
    out
}
