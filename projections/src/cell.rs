//! One value of a read-model row, as both ways of writing rows take it: the multi-row statements
//! of [`crate::batch`] and the `COPY` of [`crate::bulk`]. Its own module because each of the two
//! uses it and `batch` also hands rows to `bulk`; with the type in `batch`, the two imported each
//! other.

/// One value of a row, whichever way the row is written: a bound parameter of a multi-row
/// statement ([`crate::batch`]), or a field of `COPY`'s text format ([`crate::bulk`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell<'a> {
    /// Text, or SQL `null`.
    Text(Option<&'a str>),
    /// A 64-bit integer, or SQL `null`.
    Int(Option<i64>),
    /// A boolean, or SQL `null`.
    Bool(Option<bool>),
}

impl<'a> From<&'a str> for Cell<'a> {
    fn from(v: &'a str) -> Self {
        Cell::Text(Some(v))
    }
}
impl<'a> From<&'a String> for Cell<'a> {
    fn from(v: &'a String) -> Self {
        Cell::Text(Some(v))
    }
}
impl<'a> From<Option<&'a str>> for Cell<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Cell::Text(v)
    }
}
impl<'a> From<&'a Option<String>> for Cell<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Cell::Text(v.as_deref())
    }
}
impl From<i64> for Cell<'_> {
    fn from(v: i64) -> Self {
        Cell::Int(Some(v))
    }
}
impl From<Option<i64>> for Cell<'_> {
    fn from(v: Option<i64>) -> Self {
        Cell::Int(v)
    }
}
impl From<bool> for Cell<'_> {
    fn from(v: bool) -> Self {
        Cell::Bool(Some(v))
    }
}
