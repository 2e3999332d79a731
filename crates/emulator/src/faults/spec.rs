//! The one-line spec of a [`FaultConfig`], for a command-line flag: parsing and writing it back.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::{ApiFaults, FaultConfig, Latency, S3Faults, SourceFaults};

/// Which endpoints a `<scope>.<setting>` applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// The four API endpoints.
    Api,
    ContentStorageUrl,
    RegisterAsset,
    AssetData,
    UpdateData,
    S3,
    /// Every FileSpin endpoint, the API's and S3's (a setting without a scope: `latency=`,
    /// `retry_after=`). Not the source servers: they are another service.
    All,
}

impl FaultConfig {
    /// Parses a fault spec: comma-separated `key=value` settings, applied left to right (a later setting
    /// overrides an earlier one, so `api.5xx=0.1,register_asset.5xx=0` faults only `content_storage_url`).
    /// The empty spec is "no faults".
    ///
    /// ```text
    /// seed=<u64>                     seeds every random choice (default 0)
    /// key_invalid_after=<n>          401 from the (n+1)-th API request on
    /// api.rps=<n>                    the API's rate limit, requests per second (alias api_rps)
    /// latency=<latency>              added to every FileSpin endpoint (api and s3)
    /// retry_after=<seconds>          Retry-After of injected 429s on every FileSpin endpoint (default 1)
    ///
    /// <scope>.5xx=<p>                scope: api (the four API endpoints), content_storage_url (alias
    /// <scope>.429=<p>                storage_url), register_asset (alias register), asset_data (alias
    /// <scope>.drop=<p>               get_data: Get Data), update_data (alias data_update: Update Data), s3
    /// <scope>.lost_reply=<p>
    /// <scope>.latency=<latency>
    /// <scope>.retry_after=<seconds>
    /// s3.503=<p>                     503 SlowDown
    /// s3.slow_body=<p>               read the body slowly …
    /// s3.slow_body_pause=<duration>  … pausing this long between 16 KiB pieces (default 1s)
    /// s3.outage=<duration>           503 SlowDown for the first <duration> after the start
    /// s3.outage=<start>+<length>     … or from <start> after the start, for <length>
    ///
    /// <src>.5xx=<p>                  src: source (the SourceBucket) or web (the SourceWeb); 500 (alias
    /// <src>.503=<p>                  <src>.500); 503 + Retry-After; 429 + Retry-After; 404 as if
    /// <src>.429=<p>                  missing (source: GET/HEAD of an object only); the connection closed
    /// <src>.404=<p>                  without an answer; a GET's body cut after half (alias <src>.cut);
    /// <src>.drop=<p>                 a GET's body paused after half …
    /// <src>.reset_mid=<p>
    /// <src>.stall=<p>
    /// <src>.stall_for=<duration>     … for this long (default 30s)
    /// <src>.rps=<n>                  a rate limit, requests per second: 429 + Retry-After: 1 over it
    /// <src>.latency=<latency>
    /// <src>.retry_after=<seconds>    Retry-After of injected 503s and 429s (default 1)
    ///
    /// <p>         a probability: 0.05 or 5%
    /// <duration>  a number and a unit, ns us ms s m or h: 250ms, 1.5s
    /// <latency>   <duration> (fixed) or <duration>..<duration> (uniformly random between)
    /// <seconds>   whole seconds: 2 or 2s
    /// ```
    ///
    /// For example `seed=7,api.5xx=0.08,api.429=0.05,api.drop=0.03,s3.503=0.05,s3.drop=0.05,latency=20ms,
    /// api.rps=30,key_invalid_after=100`, or for a source `seed=7,source.503=0.05,source.drop=0.05,
    /// source.reset_mid=0.05,source.latency=5ms..20ms,source.rps=20`. [`Display`](fmt::Display) writes a config back in this syntax
    /// (settings left at their default omitted), and parsing that gives the same config.
    ///
    /// # Errors
    /// A message naming the setting at fault: an unknown key, a value that does not parse, a probability
    /// outside `[0, 1]`, probabilities adding up to more than 1 for one endpoint.
    pub fn parse(spec: &str) -> Result<FaultConfig, String> {
        let mut config = FaultConfig::default();
        for setting in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = setting
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| format!("{setting:?}: expected key=value"))?;
            apply(&mut config, key, value).map_err(|e| format!("{setting:?}: {e}"))?;
        }
        config.validate()?;
        Ok(config)
    }
}

impl FromStr for FaultConfig {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        FaultConfig::parse(spec)
    }
}

fn apply(config: &mut FaultConfig, key: &str, value: &str) -> Result<(), String> {
    match key {
        "seed" => config.seed = integer(value)?,
        "key_invalid_after" => config.key_invalid_after = Some(integer(value)?),
        "api.rps" | "api_rps" => config.api_rps = Some(integer(value)?),
        "latency" => scoped(config, Scope::All, "latency", value)?,
        "retry_after" => scoped(config, Scope::All, "retry_after", value)?,
        _ => {
            let (scope, setting) = key.split_once('.').ok_or_else(|| unknown(key))?;
            let source = match scope {
                "source" => Some(&mut config.source),
                "web" => Some(&mut config.web),
                _ => None,
            };
            if let Some(faults) = source {
                return source_setting(faults, setting, value)
                    .map_err(|e| if e.is_empty() { unknown(key) } else { e });
            }
            let scope = match scope {
                "api" => Scope::Api,
                "content_storage_url" | "storage_url" => Scope::ContentStorageUrl,
                "register_asset" | "register" => Scope::RegisterAsset,
                "asset_data" | "get_data" => Scope::AssetData,
                "update_data" | "data_update" => Scope::UpdateData,
                "s3" => Scope::S3,
                _ => return Err(unknown(key)),
            };
            if scope == Scope::S3 && setting == "outage" {
                config.s3_outage = Some(outage(value)?);
                return Ok(());
            }
            scoped(config, scope, setting, value).map_err(|e| if e.is_empty() { unknown(key) } else { e })?;
        }
    }
    Ok(())
}

/// Applies `<scope>.<setting>=<value>`; an empty error means "no such setting in this scope".
fn scoped(config: &mut FaultConfig, scope: Scope, setting: &str, value: &str) -> Result<(), String> {
    let api: &mut [&mut ApiFaults] = match scope {
        Scope::Api | Scope::All => &mut [
            &mut config.content_storage_url,
            &mut config.register_asset,
            &mut config.asset_data,
            &mut config.update_data,
        ],
        Scope::ContentStorageUrl => &mut [&mut config.content_storage_url],
        Scope::RegisterAsset => &mut [&mut config.register_asset],
        Scope::AssetData => &mut [&mut config.asset_data],
        Scope::UpdateData => &mut [&mut config.update_data],
        Scope::S3 => &mut [],
    };
    let s3 = matches!(scope, Scope::S3 | Scope::All).then_some(&mut config.s3);
    match setting {
        "latency" => {
            let latency = latency(value)?;
            api.iter_mut().for_each(|a| a.latency = latency);
            s3.into_iter().for_each(|s| s.latency = latency);
        }
        "retry_after" => {
            let secs = seconds(value)?;
            api.iter_mut().for_each(|a| a.retry_after_secs = secs);
            s3.into_iter().for_each(|s| s.retry_after_secs = secs);
        }
        "5xx" | "429" | "drop" | "lost_reply" => {
            let p = probability(value)?;
            for a in api.iter_mut() {
                *api_probability(a, setting) = p;
            }
            if let Some(s) = s3 {
                *s3_probability(s, setting).ok_or_else(String::new)? = p;
            }
        }
        "503" | "slow_body" | "slow_body_pause" if scope == Scope::S3 => {
            let s3 = s3.ok_or_else(String::new)?;
            if setting == "slow_body_pause" {
                s3.slow_body_pause = duration(value)?;
            } else {
                *s3_probability(s3, setting).ok_or_else(String::new)? = probability(value)?;
            }
        }
        _ => return Err(String::new()),
    }
    Ok(())
}

/// Applies `source.<setting>=<value>` or `web.<setting>=<value>`; an empty error means "no such setting".
fn source_setting(faults: &mut SourceFaults, setting: &str, value: &str) -> Result<(), String> {
    match setting {
        "latency" => faults.latency = latency(value)?,
        "retry_after" => faults.retry_after_secs = seconds(value)?,
        "stall_for" => faults.stall_for = duration(value)?,
        "rps" => faults.rps = Some(integer(value)?),
        _ => {
            let p = probability(value)?;
            *match setting {
                "5xx" | "500" => &mut faults.server_error,
                "503" => &mut faults.slow_down,
                "429" => &mut faults.too_many_requests,
                "404" => &mut faults.not_found,
                "drop" => &mut faults.drop_connection,
                "reset_mid" | "cut" => &mut faults.reset_mid,
                "stall" => &mut faults.stall,
                _ => return Err(String::new()),
            } = p;
        }
    }
    Ok(())
}

fn api_probability<'a>(faults: &'a mut ApiFaults, setting: &str) -> &'a mut f64 {
    match setting {
        "5xx" => &mut faults.server_error,
        "429" => &mut faults.too_many_requests,
        "drop" => &mut faults.drop_connection,
        _ => &mut faults.lost_reply,
    }
}

fn s3_probability<'a>(faults: &'a mut S3Faults, setting: &str) -> Option<&'a mut f64> {
    Some(match setting {
        "5xx" => &mut faults.server_error,
        "503" => &mut faults.slow_down,
        "429" => &mut faults.too_many_requests,
        "drop" => &mut faults.drop_connection,
        "lost_reply" => &mut faults.lost_reply,
        "slow_body" => &mut faults.slow_body,
        _ => return None,
    })
}

fn unknown(key: &str) -> String {
    format!(
        "unknown setting {key:?}; known: seed, key_invalid_after, api.rps, latency, retry_after, \
         <scope>.{{5xx,429,drop,lost_reply,latency,retry_after}} for scope api, content_storage_url, \
         register_asset, asset_data, update_data or s3, s3.{{503,slow_body,slow_body_pause,outage}}, and \
         <src>.{{5xx,503,429,404,drop,reset_mid,stall,stall_for,rps,latency,retry_after}} for src source \
         or web"
    )
}

fn integer<T: FromStr>(value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{value:?} is not a whole number in range"))
}

fn probability(value: &str) -> Result<f64, String> {
    let p = match value.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => value.parse::<f64>(),
    }
    .map_err(|_| format!("{value:?} is not a probability (0.05 or 5%)"))?;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("the probability {value} is not between 0 and 1 (0% and 100%)"));
    }
    Ok(p)
}

fn seconds(value: &str) -> Result<u64, String> {
    value
        .strip_suffix('s')
        .unwrap_or(value)
        .parse()
        .map_err(|_| format!("{value:?} is not a whole number of seconds (2 or 2s)"))
}

fn latency(value: &str) -> Result<Latency, String> {
    match value.split_once("..") {
        Some((min, max)) => {
            let (min, max) = (duration(min.trim())?, duration(max.trim())?);
            if min > max {
                return Err(format!("the least latency {min:?} is above the most {max:?}"));
            }
            Ok(Latency::between(min, max))
        }
        None => Ok(Latency::fixed(duration(value)?)),
    }
}

fn outage(value: &str) -> Result<(Duration, Duration), String> {
    match value.split_once('+') {
        Some((start, length)) => Ok((duration(start.trim())?, duration(length.trim())?)),
        None => Ok((Duration::ZERO, duration(value)?)),
    }
}

/// `<number><unit>`, the number with an optional fraction, exact to the nanosecond.
pub(crate) fn duration(value: &str) -> Result<Duration, String> {
    const UNITS: &str = "ns, us, ms, s, m or h";
    let split = value.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let not_a_number = || format!("the duration {value:?} does not start with a number");
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(not_a_number());
    }
    let nanos_per_unit: u128 = match unit.trim() {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "" => return Err(format!("the duration {value:?} needs a unit: {UNITS}")),
        other => return Err(format!("the duration {value:?} has an unknown unit {other:?}: use {UNITS}")),
    };
    let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| not_a_number())? };
    let mut nanos =
        whole.checked_mul(nanos_per_unit).ok_or_else(|| format!("the duration {value:?} is too long"))?;
    // Each fractional digit is worth a tenth of the one before; digits below a nanosecond are dropped.
    let mut digit_worth = nanos_per_unit;
    for digit in fraction.bytes() {
        digit_worth /= 10;
        nanos += u128::from(digit - b'0') * digit_worth;
    }
    let nanos = u64::try_from(nanos).map_err(|_| format!("the duration {value:?} is too long"))?;
    Ok(Duration::from_nanos(nanos))
}

/// Writes a duration in the largest unit that keeps it exact.
struct ShowDuration(Duration);

impl fmt::Display for ShowDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        for (unit, per) in [("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)] {
            if nanos.is_multiple_of(per) {
                return write!(f, "{}{unit}", nanos / per);
            }
        }
        write!(f, "{nanos}ns")
    }
}

struct ShowLatency(Latency);

impl fmt::Display for ShowLatency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Latency { min, max } = self.0;
        if min == max {
            write!(f, "{}", ShowDuration(min))
        } else {
            write!(f, "{}..{}", ShowDuration(min), ShowDuration(max))
        }
    }
}

/// Writes the settings that differ from the default, in [`FaultConfig::parse`]'s syntax.
impl fmt::Display for FaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut settings: Vec<String> = Vec::new();
        let FaultConfig {
            seed,
            content_storage_url,
            register_asset,
            asset_data,
            update_data,
            s3,
            key_invalid_after,
            api_rps,
            s3_outage,
            source,
            web,
        } = self;
        if *seed != 0 {
            settings.push(format!("seed={seed}"));
        }
        let each: [(&str, &ApiFaults); 4] = [
            ("content_storage_url", content_storage_url),
            ("register_asset", register_asset),
            ("asset_data", asset_data),
            ("update_data", update_data),
        ];
        let api_scopes: &[(&str, &ApiFaults)] =
            if each.iter().all(|(_, faults)| *faults == content_storage_url) {
                &[("api", content_storage_url)]
            } else {
                &each
            };
        for &(scope, faults) in api_scopes {
            let default = ApiFaults::default();
            for (p, name) in [
                (faults.server_error, "5xx"),
                (faults.too_many_requests, "429"),
                (faults.drop_connection, "drop"),
                (faults.lost_reply, "lost_reply"),
            ] {
                if p != 0.0 {
                    settings.push(format!("{scope}.{name}={p}"));
                }
            }
            if faults.latency != default.latency {
                settings.push(format!("{scope}.latency={}", ShowLatency(faults.latency)));
            }
            if faults.retry_after_secs != default.retry_after_secs {
                settings.push(format!("{scope}.retry_after={}", faults.retry_after_secs));
            }
        }
        let default = S3Faults::default();
        for (p, name) in [
            (s3.server_error, "5xx"),
            (s3.slow_down, "503"),
            (s3.too_many_requests, "429"),
            (s3.drop_connection, "drop"),
            (s3.lost_reply, "lost_reply"),
            (s3.slow_body, "slow_body"),
        ] {
            if p != 0.0 {
                settings.push(format!("s3.{name}={p}"));
            }
        }
        if s3.slow_body_pause != default.slow_body_pause {
            settings.push(format!("s3.slow_body_pause={}", ShowDuration(s3.slow_body_pause)));
        }
        if s3.latency != default.latency {
            settings.push(format!("s3.latency={}", ShowLatency(s3.latency)));
        }
        if s3.retry_after_secs != default.retry_after_secs {
            settings.push(format!("s3.retry_after={}", s3.retry_after_secs));
        }
        if let Some((start, length)) = s3_outage {
            settings.push(format!("s3.outage={}+{}", ShowDuration(*start), ShowDuration(*length)));
        }
        if let Some(rps) = api_rps {
            settings.push(format!("api.rps={rps}"));
        }
        if let Some(n) = key_invalid_after {
            settings.push(format!("key_invalid_after={n}"));
        }
        for (scope, faults) in [("source", source), ("web", web)] {
            write_source(&mut settings, scope, faults);
        }
        f.write_str(&settings.join(","))
    }
}

/// The settings of one source server that differ from the default.
fn write_source(settings: &mut Vec<String>, scope: &str, faults: &SourceFaults) {
    let default = SourceFaults::default();
    for (p, name) in [
        (faults.server_error, "5xx"),
        (faults.slow_down, "503"),
        (faults.too_many_requests, "429"),
        (faults.not_found, "404"),
        (faults.drop_connection, "drop"),
        (faults.reset_mid, "reset_mid"),
        (faults.stall, "stall"),
    ] {
        if p != 0.0 {
            settings.push(format!("{scope}.{name}={p}"));
        }
    }
    if faults.stall_for != default.stall_for {
        settings.push(format!("{scope}.stall_for={}", ShowDuration(faults.stall_for)));
    }
    if let Some(rps) = faults.rps {
        settings.push(format!("{scope}.rps={rps}"));
    }
    if faults.latency != default.latency {
        settings.push(format!("{scope}.latency={}", ShowLatency(faults.latency)));
    }
    if faults.retry_after_secs != default.retry_after_secs {
        settings.push(format!("{scope}.retry_after={}", faults.retry_after_secs));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_exactly() {
        let cases = [
            ("20ms", Duration::from_millis(20)),
            ("1.5s", Duration::from_millis(1500)),
            ("0.001s", Duration::from_millis(1)),
            (".5s", Duration::from_millis(500)),
            ("250us", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("0s", Duration::ZERO),
            ("1.0000000019s", Duration::from_nanos(1_000_000_001)),
        ];
        for (text, expected) in cases {
            assert_eq!(duration(text), Ok(expected), "{text}");
        }
        for bad in ["20", "ms", "1..2s", "1.2.3s", "-1s", "20 parsecs", "99999999999999999999m"] {
            assert!(duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn source_scopes_parse_and_round_trip() {
        let config = FaultConfig::parse(
            "seed=4,source.503=0.05,source.500=1%,source.drop=0.05,source.cut=0.05,source.latency=1ms..3ms,\
             source.rps=20,source.404=0.01,web.stall=0.5,web.stall_for=250ms,web.retry_after=3s,web.429=0.1",
        )
        .unwrap();
        assert_eq!(config.source.slow_down, 0.05);
        assert_eq!(config.source.server_error, 0.01);
        assert_eq!(config.source.reset_mid, 0.05);
        assert_eq!(config.source.rps, Some(20));
        assert_eq!(
            config.source.latency,
            Latency::between(Duration::from_millis(1), Duration::from_millis(3))
        );
        assert_eq!(config.web.stall_for, Duration::from_millis(250));
        assert_eq!(config.web.retry_after_secs, 3);
        // The FileSpin endpoints are untouched, and a scope-less setting leaves the sources alone.
        assert!(config.content_storage_url.latency.is_none() && config.s3.latency.is_none());
        let written = config.to_string();
        assert_eq!(
            written,
            "seed=4,source.5xx=0.01,source.503=0.05,source.404=0.01,source.drop=0.05,source.reset_mid=0.05,\
             source.rps=20,source.latency=1ms..3ms,web.429=0.1,web.stall=0.5,web.stall_for=250ms,web.retry_after=3"
        );
        assert_eq!(FaultConfig::parse(&written).unwrap(), config);
        assert_eq!(FaultConfig::parse("latency=5ms").unwrap().source, SourceFaults::default());

        for (spec, message) in [
            ("source.slow_body=0.1", "unknown setting \"source.slow_body\""),
            ("web.lost_reply=0.1", "unknown setting \"web.lost_reply\""),
            ("source.rps=0", "source.rps: the rate limit must be at least 1"),
            ("web.503=0.6,web.drop=0.6", "web: the fault probabilities add up to 1.2"),
            ("source.stall_for=soon", "does not start with a number"),
        ] {
            let error = FaultConfig::parse(spec).unwrap_err();
            assert!(error.contains(message), "{spec:?}: {error:?} should say {message:?}");
        }
    }

    #[test]
    fn durations_are_written_in_the_largest_exact_unit() {
        for (duration, text) in [
            (Duration::from_secs(3), "3s"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::from_micros(20), "20us"),
            (Duration::from_nanos(1_000_000_001), "1000000001ns"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(ShowDuration(duration).to_string(), text);
        }
    }
}
