//! CSV writing shared by every export: RFC 4180 quoting, and the neutralising of cells a
//! spreadsheet would run as a formula (OWASP "CSV injection"). Exports for people (the security
//! activity) neutralise every cell; the auditors' raw event export (`gatehouse-replay export`)
//! quotes only, so that it stays byte-faithful to the store.
use std::borrow::Cow;

/// Whether a spreadsheet would read a cell starting with `c` as a formula (or a formula split
/// over a tab or a carriage return).
fn starts_formula(c: char) -> bool {
    matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r')
}

/// The cell with a leading `'` when it starts like a formula (`=`, `+`, `-`, `@`, tab, carriage
/// return), so that a spreadsheet shows it as text; any other cell unchanged.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some(c) if starts_formula(c) => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// The cell quoted as RFC 4180 asks when it holds a comma, a quote or a line break (quotes
/// doubled); any other cell unchanged.
pub fn quote(cell: &str) -> Cow<'_, str> {
    if cell.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", cell.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(cell)
    }
}

/// One record, quoted, ended by CRLF.
pub fn record<S: AsRef<str>>(cells: impl IntoIterator<Item = S>) -> String {
    let mut line = String::new();
    for (i, cell) in cells.into_iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&quote(cell.as_ref()));
    }
    line.push_str("\r\n");
    line
}

/// One record with every cell neutralised, then quoted, ended by CRLF: for exports a person
/// opens in a spreadsheet.
pub fn safe_record<S: AsRef<str>>(cells: impl IntoIterator<Item = S>) -> String {
    record(
        cells
            .into_iter()
            .map(|c| neutralise(c.as_ref()).into_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_neutralise_prefixes_formula_starts_only() {
        for cell in ["=1+1", "+cmd", "-2", "@SUM(A1)", "\tx", "\r=x"] {
            assert_eq!(neutralise(cell), format!("'{cell}"), "{cell:?}");
        }
        for cell in ["", "plain", "1=1", "a-b", "'=already", " =spaced"] {
            assert_eq!(neutralise(cell), cell, "{cell:?}");
        }
    }

    #[test]
    fn test_record_quotes_commas_quotes_and_line_breaks() {
        assert_eq!(
            record(["a", "b,c", "say \"hi\"", "x\ny"]),
            "a,\"b,c\",\"say \"\"hi\"\"\",\"x\ny\"\r\n"
        );
        assert_eq!(record(Vec::<String>::new()), "\r\n");
    }

    #[test]
    fn test_safe_record_neutralises_then_quotes() {
        assert_eq!(
            safe_record(["=HYPERLINK(\"http://x\",\"y\")", "ok"]),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",ok\r\n"
        );
    }
}
