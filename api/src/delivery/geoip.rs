//! The approximate place of an address, for new-sign-in notices: a GeoIP database in the MaxMind
//! DB format (`GATEHOUSE_GEOIP_DB`), read whole into memory at start with the `maxminddb` crate.
//! A lookup is local: the address never leaves the server.
use std::net::IpAddr;
use std::path::Path;

use maxminddb::{geoip2, Reader};

/// An opened GeoIP database.
pub struct GeoIp {
    reader: Reader<Vec<u8>>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GeoIp")
    }
}

impl GeoIp {
    /// Opens (reads) the database at `path`; the message names the path when it cannot.
    pub fn open(path: &Path) -> Result<Self, String> {
        Reader::open_readfile(path)
            .map(|reader| Self { reader })
            .map_err(|e| format!("GATEHOUSE_GEOIP_DB {}: {e}", path.display()))
    }

    /// Opens a database held in memory (tests).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, String> {
        Reader::from_source(bytes)
            .map(|reader| Self { reader })
            .map_err(|e| e.to_string())
    }

    /// "City, Country" (English names), or the country alone; `None` for an address the
    /// database does not place (private ranges, unknown networks) or a malformed address.
    pub fn place(&self, ip: &str) -> Option<String> {
        let ip: IpAddr = ip.parse().ok()?;
        let found = self.reader.lookup(ip).ok()?;
        let city: geoip2::City = found.decode().ok()??;
        let country = city.country.names.english;
        let town = city.city.names.english;
        match (town, country) {
            (Some(town), Some(country)) => Some(format!("{town}, {country}")),
            (None, Some(country)) => Some(country.to_string()),
            (Some(town), None) => Some(town.to_string()),
            (None, None) => None,
        }
    }
}
