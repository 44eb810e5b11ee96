//! Breached passwords (Pwned Passwords): a k-anonymity range service
//! (`GET {GATEHOUSE_PWNED_RANGE_URL}/{first 5 hex of SHA-1}` answering `SUFFIX:COUNT` lines) and an
//! offline file in the downloadable format (`SHA1HEX:COUNT` lines sorted by hash), searched by
//! binary search over byte offsets without loading it.
//!
//! Only the first five hex digits of the password's SHA-1 ever leave the process. When the corpus
//! cannot be consulted the check is skipped, logged and counted
//! (`gatehouse_breach_checks_skipped_total`): a sign-up never fails because a third party is down.
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_domain::password::{
    breach_verdict, BoxFuture, BreachCheckError, BreachedPasswords, CandidatePassword,
    PasswordRejection,
};
use secrecy::{ExposeSecret, SecretString};
use sha1::{Digest as _, Sha1};

/// How long a range request may take before the check is skipped.
const RANGE_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest range answer read (real ones are about 30 KiB, padded ones a little more).
const MAX_RANGE_BYTES: usize = 1 << 20;

/// Uppercase hex SHA-1 of a password, as Pwned Passwords lists it.
fn sha1_hex(password: &SecretString) -> String {
    hex::encode_upper(Sha1::digest(password.expose_secret().as_bytes()))
}

/// The count on a `HASH:COUNT` line whose hash (or suffix) is `wanted`; `None` for another line.
fn count_on_line(line: &str, wanted: &str) -> Option<u64> {
    let (hash, count) = line.trim_end_matches(['\r', '\n']).split_once(':')?;
    if !hash.trim().eq_ignore_ascii_case(wanted) {
        return None;
    }
    Some(count.trim().parse().unwrap_or(0))
}

/// The k-anonymity range service.
pub struct PwnedRange {
    client: reqwest::Client,
    base: String,
}

impl PwnedRange {
    /// A client for `base` (e.g. `https://api.pwnedpasswords.com/range`); fails on a bad URL.
    pub fn new(base: &str) -> Result<Self, String> {
        let url = reqwest::Url::parse(base)
            .map_err(|e| format!("GATEHOUSE_PWNED_RANGE_URL is not a valid URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("GATEHOUSE_PWNED_RANGE_URL must be an http or https URL".into());
        }
        let client = reqwest::Client::builder()
            .timeout(RANGE_TIMEOUT)
            .connect_timeout(RANGE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            client,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    async fn lookup(&self, hash: &str) -> Result<u64, BreachCheckError> {
        let (prefix, suffix) = hash.split_at(5);
        let unavailable = |e: String| BreachCheckError(e);
        let mut response = self
            .client
            .get(format!("{}/{prefix}", self.base))
            // Padded answers hide the real number of suffixes from an eavesdropper.
            .header("Add-Padding", "true")
            .send()
            .await
            .map_err(|e| unavailable(format!("range request failed: {}", e.without_url())))?;
        if !response.status().is_success() {
            return Err(unavailable(format!(
                "range service answered {}",
                response.status()
            )));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unavailable(format!("range answer unreadable: {}", e.without_url())))?
        {
            if body.len() + chunk.len() > MAX_RANGE_BYTES {
                return Err(unavailable("range answer too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&body);
        Ok(text
            .lines()
            .find_map(|line| count_on_line(line, suffix))
            .unwrap_or(0))
    }
}

impl BreachedPasswords for PwnedRange {
    fn times_seen<'a>(
        &'a self,
        password: &'a SecretString,
    ) -> BoxFuture<'a, Result<u64, BreachCheckError>> {
        Box::pin(async move { self.lookup(&sha1_hex(password)).await })
    }
}

/// The downloadable corpus: a file of `SHA1HEX:COUNT` lines sorted by hash.
pub struct PwnedFile {
    path: PathBuf,
}

impl PwnedFile {
    /// Reads `path` on each check; fails at startup when it cannot be opened.
    pub fn new(path: PathBuf) -> Result<Self, String> {
        std::fs::File::open(&path).map_err(|e| {
            format!(
                "GATEHOUSE_PWNED_FILE {} cannot be read: {e}",
                path.display()
            )
        })?;
        Ok(Self { path })
    }
}

impl BreachedPasswords for PwnedFile {
    fn times_seen<'a>(
        &'a self,
        password: &'a SecretString,
    ) -> BoxFuture<'a, Result<u64, BreachCheckError>> {
        let hash = sha1_hex(password);
        let path = self.path.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || search_file(&path, &hash))
                .await
                .map_err(|e| BreachCheckError(format!("file search failed: {e}")))?
                .map_err(|e| BreachCheckError(format!("cannot read the breach file: {e}")))
        })
    }
}

/// Binary search of a sorted `HASH:COUNT` file for `hash` (uppercase hex) over byte offsets:
/// each probe seeks, skips to the next line start, and reads one line. The count, or 0.
pub fn search_file(path: &Path, hash: &str) -> std::io::Result<u64> {
    let mut reader = BufReader::with_capacity(256, std::fs::File::open(path)?);
    let len = reader.seek(SeekFrom::End(0))?;
    let wanted = hash.to_ascii_uppercase();
    // Invariant: if the hash is listed, its line starts in [lo, hi).
    let (mut lo, mut hi) = (0u64, len);
    let mut line = Vec::with_capacity(64);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let Some(start) = next_line_start(&mut reader, mid)? else {
            hi = mid;
            continue;
        };
        if start >= hi {
            hi = mid;
            continue;
        }
        line.clear();
        let read = reader.read_until(b'\n', &mut line)? as u64;
        let text = String::from_utf8_lossy(&line);
        let key = text
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_uppercase();
        match key.as_str().cmp(wanted.as_str()) {
            std::cmp::Ordering::Equal => return Ok(count_on_line(&text, &wanted).unwrap_or(0)),
            std::cmp::Ordering::Less => lo = start + read.max(1),
            std::cmp::Ordering::Greater => hi = start,
        }
    }
    Ok(0)
}

/// Positions the reader at the first line starting at or after `pos`; `None` past the end.
fn next_line_start<R: BufRead + Seek>(reader: &mut R, pos: u64) -> std::io::Result<Option<u64>> {
    if pos == 0 {
        reader.seek(SeekFrom::Start(0))?;
        return Ok(Some(0));
    }
    // The byte before `pos` tells whether `pos` is already a line start.
    reader.seek(SeekFrom::Start(pos - 1))?;
    let mut skipped = Vec::new();
    let read = reader.read_until(b'\n', &mut skipped)? as u64;
    if read == 0 || !skipped.ends_with(b"\n") {
        return Ok(None);
    }
    Ok(Some(pos - 1 + read))
}

/// The configured sources, the policy's minimum count, and the skip counter.
pub struct BreachCheck {
    sources: Vec<Arc<dyn BreachedPasswords>>,
    min_count: u64,
    skipped: AtomicU64,
}

impl Default for BreachCheck {
    fn default() -> Self {
        Self::new(Vec::new(), 1)
    }
}

impl BreachCheck {
    /// Checks against every source (none: the check is off).
    pub fn new(sources: Vec<Arc<dyn BreachedPasswords>>, min_count: u64) -> Self {
        Self {
            sources,
            min_count: min_count.max(1),
            skipped: AtomicU64::new(0),
        }
    }

    /// Refuses a password seen `min_count` times or more in any source; a source that cannot
    /// be consulted is skipped, logged and counted.
    pub async fn check(&self, password: &CandidatePassword) -> Result<(), PasswordRejection> {
        for source in &self.sources {
            let seen = source.times_seen(password.secret()).await;
            if let Err(e) = &seen {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "breached-password check skipped");
            }
            breach_verdict(&seen, self.min_count)?;
        }
        Ok(())
    }

    /// Checks skipped because a source could not be consulted, since the process started.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn file_with(lines: &[&str], newline: &str) -> tempfile_path::TempPath {
        let path = tempfile_path::TempPath::new();
        let mut file = std::fs::File::create(&path.0).unwrap();
        for line in lines {
            write!(file, "{line}{newline}").unwrap();
        }
        path
    }

    /// A file path removed when dropped (no extra crate for one test helper).
    mod tempfile_path {
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn new() -> Self {
                let mut bytes = [0u8; 8];
                getrandom::fill(&mut bytes).unwrap();
                Self(std::env::temp_dir().join(format!("pwned-{}.txt", hex::encode(bytes))))
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    fn hash(n: u32) -> String {
        format!("{:040X}", u128::from(n) * 0x1_0000_0001)
    }

    fn sorted_lines(n: u32) -> Vec<String> {
        (0..n)
            .map(|i| format!("{}:{}", hash(i * 2), i + 1))
            .collect()
    }

    #[test]
    fn test_search_file_finds_first_last_and_middle_and_misses_absent() {
        for newline in ["\n", "\r\n"] {
            let lines = sorted_lines(1000);
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let file = file_with(&refs, newline);
            assert_eq!(search_file(&file.0, &hash(0)).unwrap(), 1, "first line");
            assert_eq!(
                search_file(&file.0, &hash(1998)).unwrap(),
                1000,
                "last line"
            );
            assert_eq!(search_file(&file.0, &hash(1000)).unwrap(), 501, "middle");
            for absent in [1, 999, 1999, 5000] {
                assert_eq!(search_file(&file.0, &hash(absent)).unwrap(), 0, "{absent}");
            }
            // Lowercase input matches the uppercase listing.
            assert_eq!(
                search_file(&file.0, &hash(2).to_ascii_lowercase()).unwrap(),
                2
            );
        }
    }

    #[test]
    fn test_search_file_handles_short_files_and_a_missing_final_newline() {
        let empty = file_with(&[], "\n");
        assert_eq!(search_file(&empty.0, &hash(0)).unwrap(), 0);
        let one = file_with(&[&format!("{}:7", hash(4))], "\r\n");
        assert_eq!(search_file(&one.0, &hash(4)).unwrap(), 7);
        assert_eq!(search_file(&one.0, &hash(3)).unwrap(), 0);
        assert_eq!(search_file(&one.0, &hash(5)).unwrap(), 0);
        let unterminated = tempfile_path::TempPath::new();
        std::fs::write(&unterminated.0, format!("{}:3\n{}:9", hash(1), hash(2))).unwrap();
        assert_eq!(search_file(&unterminated.0, &hash(2)).unwrap(), 9);
        assert_eq!(search_file(&unterminated.0, &hash(1)).unwrap(), 3);
    }

    #[test]
    fn test_range_lines_match_the_suffix_and_padding_counts_zero() {
        let suffix = "0018A45C4D1DEF81644B54AB7F969B88D65";
        assert_eq!(count_on_line(&format!("{suffix}:12\r\n"), suffix), Some(12));
        assert_eq!(
            count_on_line(&format!("{}:0", suffix.to_ascii_lowercase()), suffix),
            Some(0)
        );
        assert_eq!(
            count_on_line("00D4F6E8FA6EECAD2A3AA415EEC418D38EC:2", suffix),
            None
        );
        assert_eq!(count_on_line("garbage", suffix), None);
    }

    #[test]
    fn test_sha1_hex_is_uppercase_pwned_form() {
        // SHA-1("password"), as listed by Pwned Passwords.
        assert_eq!(
            sha1_hex(&SecretString::from("password")),
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"
        );
    }
}
