//! Range-checked value parsers for the settings. clap refuses a value out of range while parsing;
//! its message names the flag, and [`NamingEnv`] adds the environment variable (most settings
//! come from the environment, where the flag name would leave an operator guessing).
use std::ffi::OsStr;

use clap::builder::{RangedI64ValueParser, RangedU64ValueParser, TypedValueParser};
use clap::error::{ContextKind, ContextValue};

/// The longest duration any setting accepts, in seconds (100 years): far beyond any sensible
/// value, and small enough that adding it to a timestamp cannot overflow.
pub const MAX_SECONDS: u64 = 100 * 365 * 86_400;

/// A value parser whose errors name the setting's environment variable beside its flag.
#[derive(Debug, Clone)]
pub struct NamingEnv<P>(P);

impl<P> NamingEnv<P> {
    /// `parser`, its errors naming the environment variable.
    pub fn new(parser: P) -> Self {
        Self(parser)
    }
}

impl<P: TypedValueParser> TypedValueParser for NamingEnv<P> {
    type Value = P::Value;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Self::Value, clap::Error> {
        self.0.parse_ref(cmd, arg, value).map_err(|mut error| {
            let env = arg.and_then(clap::Arg::get_env);
            if let (Some(env), Some(ContextValue::String(flag))) =
                (env, error.get(ContextKind::InvalidArg))
            {
                let named = format!("{flag} ({})", env.to_string_lossy());
                error.insert(ContextKind::InvalidArg, ContextValue::String(named));
            }
            error
        })
    }
}

/// Whole seconds from `min` up to [`MAX_SECONDS`].
pub fn seconds(min: u64) -> NamingEnv<RangedU64ValueParser<u64>> {
    NamingEnv(RangedU64ValueParser::new().range(min..=MAX_SECONDS))
}

/// A count of at least `min` (`u64`, at most `i64::MAX` so that it converts to the signed counts
/// the read models keep).
pub fn count(min: u64) -> NamingEnv<RangedU64ValueParser<u64>> {
    NamingEnv(RangedU64ValueParser::new().range(min..=i64::MAX.unsigned_abs()))
}

/// A count of at least `min` (`u32`).
pub fn count_u32(min: i64) -> NamingEnv<RangedI64ValueParser<u32>> {
    NamingEnv(RangedI64ValueParser::new().range(min..=i64::from(u32::MAX)))
}

/// A count of at least `min` and at most `max` (`usize`).
pub fn count_usize(min: u64, max: u64) -> NamingEnv<RangedU64ValueParser<usize>> {
    NamingEnv(RangedU64ValueParser::new().range(min..=max))
}

/// Whole seconds as a chrono duration (in range by [`MAX_SECONDS`]).
pub fn duration(seconds: u64) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(seconds.min(MAX_SECONDS)).unwrap_or(i64::MAX / 1000))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Probe {
        #[arg(long, env = "GATEHOUSE_PROBE_SECONDS", default_value_t = 5, value_parser = seconds(1))]
        probe_seconds: u64,
    }

    #[test]
    fn test_out_of_range_names_flag_and_env() {
        let error = Probe::try_parse_from(["probe", "--probe-seconds", "0"]).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("--probe-seconds"), "{text}");
        assert!(text.contains("GATEHOUSE_PROBE_SECONDS"), "{text}");
        let error = Probe::try_parse_from(["probe", "--probe-seconds=-3"]).unwrap_err();
        assert!(error.to_string().contains("GATEHOUSE_PROBE_SECONDS"));
        let too_long = (MAX_SECONDS + 1).to_string();
        assert!(Probe::try_parse_from(["probe", "--probe-seconds", too_long.as_str()]).is_err());
        let fine = Probe::try_parse_from(["probe", "--probe-seconds", "7"]).unwrap();
        assert_eq!(fine.probe_seconds, 7);
    }

    #[test]
    fn test_duration_is_whole_seconds() {
        assert_eq!(duration(90), chrono::Duration::seconds(90));
        assert_eq!(
            duration(MAX_SECONDS),
            chrono::Duration::seconds(MAX_SECONDS as i64)
        );
    }
}
