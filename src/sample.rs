//! Sample data sets: a tree of random binary files and the manifest that lists them, for the demo,
//! the tests and the benchmarks. Seeded, so a failure replays.

use std::io::Write;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use rand::{Rng, RngCore, SeedableRng, rngs::StdRng};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleSpec {
    /// The size of each file, in order.
    pub sizes: Vec<u64>,
    /// The seed of the random contents (and of the sizes, for the built-in specs).
    pub seed: u64,
}

impl SampleSpec {
    /// `count` files of mixed sizes: one empty file, a few of several MiB (the largest over 8 MiB),
    /// the rest spread log-uniformly between 1 KiB and 512 KiB.
    pub fn mixed(count: usize, seed: u64) -> Self {
        const MIB: u64 = 1024 * 1024;
        let mut rng = StdRng::seed_from_u64(seed);
        let large = [0, 2 * MIB + 17, 4 * MIB, 6 * MIB + 1, 9 * MIB - 3];
        let sizes = (0..count)
            .map(|i| match large.get(i) {
                Some(&s) => s,
                None => {
                    let exp: f64 = rng.random_range(10.0..19.0);
                    exp.exp2() as u64
                }
            })
            .collect();
        SampleSpec { sizes, seed }
    }

    /// The demo's set: 300 mixed files.
    pub fn demo() -> Self {
        Self::mixed(300, 2026)
    }
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFile {
    /// Its manifest id.
    pub id: String,
    /// Its path relative to the set's directory.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its MD5, lowercase hex.
    pub md5: String,
}

/// A generated tree and its manifest.
#[derive(Debug, Clone)]
pub struct SampleSet {
    /// The directory holding the files and the manifest.
    pub dir: PathBuf,
    /// The manifest (`manifest.json` in `dir`).
    pub manifest: PathBuf,
    /// The files, in manifest order.
    pub files: Vec<SampleFile>,
}

impl SampleSet {
    /// Writes the files of `spec` and a manifest listing them into `dir`.
    pub fn write(dir: &Path, spec: &SampleSpec) -> std::io::Result<SampleSet> {
        let mut rng = StdRng::seed_from_u64(spec.seed ^ 0x5eed);
        let mut files = Vec::with_capacity(spec.sizes.len());
        let mut buf = vec![0u8; 256 * 1024];
        for (i, &size) in spec.sizes.iter().enumerate() {
            let rel = format!("photos/{:02}/file-{i:05}.bin", i % 10);
            let path = dir.join(&rel);
            std::fs::create_dir_all(path.parent().expect("has a parent"))?;
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
            let mut md5 = Md5::new();
            let mut left = size;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                rng.fill_bytes(&mut buf[..n]);
                md5.update(&buf[..n]);
                out.write_all(&buf[..n])?;
                left -= n as u64;
            }
            out.flush()?;
            files.push(SampleFile {
                id: format!("sample-{i:05}"),
                path: rel,
                size,
                md5: hex::encode(md5.finalize()),
            });
        }
        let manifest = dir.join("manifest.json");
        let assets: Vec<_> = files.iter().map(|f| serde_json::json!({"path": f.path, "id": f.id})).collect();
        let doc = serde_json::json!({
            "version": 1,
            "service_data": {"app": "spinlift-sample", "build": env!("CARGO_PKG_VERSION"),
                             "deployment_data": {"client": "spinlift", "location": "LOCAL"}},
            "assets": assets,
        });
        std::fs::write(&manifest, serde_json::to_vec_pretty(&doc)?)?;
        Ok(SampleSet { dir: dir.to_path_buf(), manifest, files })
    }

    /// Total bytes of the set.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}
