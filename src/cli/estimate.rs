//! How long a run will take, before it starts: the size distribution of what it would upload, and the
//! bounds that apply to it — FileSpin's API request limit (two to four calls a file), the upload bandwidth, the
//! S3 request rate — of which the largest is the estimate (`run --dry-run`).

/// Upper edges of the size buckets shown, with their labels.
const BUCKETS: [(u64, &str); 6] = [
    (100 * 1024, "< 100 KiB"),
    (1024 * 1024, "100 KiB – 1 MiB"),
    (16 * 1024 * 1024, "1 – 16 MiB"),
    (256 * 1024 * 1024, "16 – 256 MiB"),
    (1024 * 1024 * 1024, "256 MiB – 1 GiB"),
    (u64::MAX, "≥ 1 GiB"),
];

/// The files of a run by size.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Sizes {
    /// Files and bytes per bucket of [`BUCKETS`].
    buckets: [(u64, u64); BUCKETS.len()],
}

impl Sizes {
    pub(crate) fn add(&mut self, size: u64) {
        let i = BUCKETS.iter().position(|(edge, _)| size < *edge).unwrap_or(BUCKETS.len() - 1);
        self.buckets[i].0 += 1;
        self.buckets[i].1 += size;
    }

    pub(crate) fn files(&self) -> u64 {
        self.buckets.iter().map(|b| b.0).sum()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.buckets.iter().map(|b| b.1).sum()
    }

    /// One line per non-empty bucket: label, files, share of the bytes.
    pub(crate) fn lines(&self) -> Vec<String> {
        let total = self.bytes().max(1) as f64;
        BUCKETS
            .iter()
            .zip(&self.buckets)
            .filter(|(_, (files, _))| *files > 0)
            .map(|((_, label), (files, bytes))| {
                format!(
                    "{label:>16}: {files:>9} files, {:>5.1} % of the bytes",
                    *bytes as f64 * 100.0 / total
                )
            })
            .collect()
    }
}

/// What may bound a run's duration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Bound {
    /// FileSpin's request limit: `calls` API calls a file (2 to register, 1 more for data or the tag,
    /// 1 more to verify) at `rps`.
    Api { rps: u32, calls: u32 },
    /// Bytes over the upload bandwidth.
    Bandwidth { bytes_per_second: u64 },
    /// S3 POSTs started per second.
    S3 { rps: u32 },
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bound::Api { rps, calls } => {
                let per_file = match calls {
                    2 => "two".to_owned(),
                    3 => "three".to_owned(),
                    4 => "four".to_owned(),
                    n => n.to_string(),
                };
                write!(
                    f,
                    "FileSpin's API limit ({rps} requests/s, {per_file} a file: {:.1} files/s)",
                    f64::from(*rps) / f64::from((*calls).max(1))
                )
            }
            Bound::Bandwidth { bytes_per_second } => {
                write!(f, "upload bandwidth ({:.1} MB/s)", *bytes_per_second as f64 / 1e6)
            }
            Bound::S3 { rps } => write!(f, "the S3 request limit ({rps} uploads/s)"),
        }
    }
}

/// Each known bound's time in seconds, the longest first: the first is the estimate.
pub(crate) fn bounds(
    sizes: &Sizes,
    api_rps: u32,
    calls: u32,
    s3_rps: u32,
    bandwidth: Option<u64>,
) -> Vec<(Bound, f64)> {
    let (files, bytes) = (sizes.files() as f64, sizes.bytes() as f64);
    let mut bounds = Vec::new();
    if api_rps > 0 {
        bounds.push((Bound::Api { rps: api_rps, calls }, files * f64::from(calls) / f64::from(api_rps)));
    }
    if s3_rps > 0 {
        bounds.push((Bound::S3 { rps: s3_rps }, files / f64::from(s3_rps)));
    }
    if let Some(rate) = bandwidth.filter(|r| *r > 0) {
        bounds.push((Bound::Bandwidth { bytes_per_second: rate }, bytes / rate as f64));
    }
    bounds.sort_by(|a, b| b.1.total_cmp(&a.1));
    bounds
}

/// `5 h 12 min`, `3 min 04 s`, `12 s`.
pub(crate) fn human(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        3600..172_800 => format!("{} h {:02} min", s / 3600, s % 3600 / 60),
        _ => format!("{:.1} days", secs / 86_400.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_photo_library_at_the_documented_limit_is_bound_by_the_api() {
        let mut sizes = Sizes::default();
        for _ in 0..54_000 {
            sizes.add(3 * 1024 * 1024);
        }
        // 54,000 files at 15 files/s: one hour; 170 GB at 100 MB/s: 28 min.
        let b = bounds(&sizes, 30, 2, 0, Some(100_000_000));
        assert_eq!(b[0].0, Bound::Api { rps: 30, calls: 2 });
        assert!((b[0].1 - 3600.0).abs() < 1e-6);
        assert_eq!(b[1].0, Bound::Bandwidth { bytes_per_second: 100_000_000 });
        assert_eq!(human(b[0].1), "1 h 00 min");
    }

    #[test]
    fn large_files_on_a_slow_link_are_bound_by_bandwidth() {
        let mut sizes = Sizes::default();
        for _ in 0..100 {
            sizes.add(1 << 30);
        }
        let b = bounds(&sizes, 30, 2, 0, Some(10_000_000));
        assert_eq!(b[0].0, Bound::Bandwidth { bytes_per_second: 10_000_000 });
        assert_eq!(sizes.lines(), ["         ≥ 1 GiB:       100 files, 100.0 % of the bytes"]);
    }

    #[test]
    fn without_limits_nothing_is_claimed() {
        let mut sizes = Sizes::default();
        sizes.add(1);
        assert!(bounds(&sizes, 0, 2, 0, None).is_empty());
        assert_eq!(human(200_000.0), "2.3 days");
    }
}
