//! `--shard I/N` and `--shards N`: one worker's part of a batch split between several, and the view
//! over all their checkpoints that `status` and `report` give.

use std::path::{Path, PathBuf};

use clap::Args;
use spinlift::{Checkpoint, Manifest, Shard, shard_path};
use spinlift_manifest::journal::{Record, Replayed, replay};

/// The variable Kubernetes sets in each pod of an Indexed Job: the pod's index, 0 to completions − 1.
pub(crate) const JOB_INDEX_VAR: &str = "JOB_COMPLETION_INDEX";

#[derive(Args, Clone, Default)]
pub(crate) struct RunShardArgs {
    /// Run shard I of N: the entries whose id hashes to I (MD5 of the id, first 8 bytes big-endian,
    /// mod N). The checkpoint and report get `.shard-I-of-N` in their names; --api-rps, --s3-rps and
    /// --bwlimit are for the whole fleet and divided by N.
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    shard: Option<Shard>,
    /// Run shard I of N with I taken from JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs).
    #[arg(long, value_name = "N")]
    shards: Option<u32>,
}

impl RunShardArgs {
    /// The shard this worker runs, if any.
    pub(crate) fn resolve(&self) -> Result<Option<Shard>, String> {
        self.resolve_with(std::env::var(JOB_INDEX_VAR).ok().as_deref())
    }

    fn resolve_with(&self, job_index: Option<&str>) -> Result<Option<Shard>, String> {
        if let Some(shard) = self.shard {
            return Ok(Some(shard));
        }
        let Some(count) = self.shards else { return Ok(None) };
        let index = job_index.ok_or_else(|| {
            format!(
                "--shards {count} takes this worker's index from {JOB_INDEX_VAR} (set in Kubernetes \
                 Indexed Jobs), which is not set: give --shard I/{count} instead"
            )
        })?;
        let index = index
            .trim()
            .parse::<u32>()
            .map_err(|_| format!("{JOB_INDEX_VAR}={index:?} is not a shard index (a number from 0)"))?;
        Shard::new(index, count).map(Some)
    }
}

#[derive(Args, Clone, Default)]
pub(crate) struct ViewShardArgs {
    /// Only shard I of N (its entries and its checkpoint).
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    shard: Option<Shard>,
    /// The batch was run in N shards: one view over all N checkpoints.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    shards: Option<u32>,
}

/// The checkpoints of a batch, one or one per shard, read back.
pub(crate) struct Checkpoints {
    /// `(path, replayed)`, one per shard (`None`: no checkpoint there yet).
    journals: Vec<(PathBuf, Option<Replayed>)>,
}

impl Checkpoints {
    /// Loads the manifest (one shard's entries for `--shard`, all of them otherwise) and replays the
    /// checkpoints that go with it.
    pub(crate) fn open(
        manifest_path: &Path,
        checkpoint: Option<PathBuf>,
        view: &ViewShardArgs,
    ) -> Result<(Manifest, Checkpoints), String> {
        let manifest = match view.shard {
            Some(shard) => Manifest::load_shard(manifest_path, shard),
            None => Manifest::load(manifest_path),
        }
        .map_err(|e| e.to_string())?;
        let checkpoint = checkpoint.map(Checkpoint::At).unwrap_or_default();
        let base = checkpoint.path_for(&manifest.source).ok_or("no checkpoint")?;
        let whole = view.shard.is_none() && view.shards.is_none_or(|n| n <= 1);
        if whole
            && !base.exists()
            && let Some(conflict) = spinlift::shard_conflict(&base, None)
        {
            return Err(conflict);
        }
        let paths: Vec<PathBuf> = match (view.shard, view.shards) {
            (Some(shard), _) => vec![shard_path(&base, shard)],
            (None, Some(n)) if n > 1 => {
                (0..n).map(|i| shard_path(&base, Shard::new(i, n).expect("i < n"))).collect()
            }
            _ => vec![base],
        };
        let mut journals = Vec::with_capacity(paths.len());
        for path in paths {
            let replayed = replay(&path).map_err(|e| e.to_string())?;
            journals.push((path, replayed));
        }
        Ok((manifest, Checkpoints { journals }))
    }

    /// The last record of entry `id`, from the checkpoint of its shard.
    pub(crate) fn get(&self, id: &str) -> Option<Record> {
        let at = match self.journals.len() {
            1 => 0,
            n => Shard::of(id, n as u32) as usize,
        };
        self.journals[at].1.as_ref()?.get(id)
    }

    /// The checkpoints read, and whether each exists.
    pub(crate) fn paths(&self) -> impl Iterator<Item = (&Path, bool)> {
        self.journals.iter().map(|(path, r)| (path.as_path(), r.is_some()))
    }

    /// Whether no checkpoint exists yet.
    pub(crate) fn none_yet(&self) -> bool {
        self.journals.iter().all(|(_, r)| r.is_none())
    }

    /// What replay tolerated, by checkpoint.
    pub(crate) fn warnings(&self) -> impl Iterator<Item = String> + '_ {
        let several = self.journals.len() > 1;
        self.journals.iter().filter_map(|(path, r)| Some((path, r.as_ref()?))).flat_map(move |(path, r)| {
            r.warnings
                .iter()
                .map(move |w| if several { format!("{}: {w}", path.display()) } else { w.clone() })
        })
    }

    /// Ids recorded in a checkpoint but not listed in the manifest (of the shard).
    pub(crate) fn unlisted(&self, manifest: &Manifest) -> usize {
        let listed: std::collections::HashSet<&str> = manifest.entries.iter().map(|e| e.id()).collect();
        self.journals
            .iter()
            .filter_map(|(_, r)| r.as_ref())
            .map(|r| r.ids().filter(|id| !listed.contains(id)).count())
            .sum()
    }
}

/// A rate for the whole fleet, as one of `count` workers takes it: divided evenly, never below 1 (a
/// limit of 0 means none and stays 0).
pub(crate) fn per_worker(rate: u64, count: u32) -> u64 {
    if rate == 0 { 0 } else { (rate / u64::from(count.max(1))).max(1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_takes_the_index_from_the_job() {
        let args = RunShardArgs { shard: None, shards: Some(4) };
        assert_eq!(args.resolve_with(Some("2")).unwrap(), Some(Shard::new(2, 4).unwrap()));
        assert!(args.resolve_with(None).unwrap_err().contains("--shard I/4"));
        assert!(args.resolve_with(Some("4")).unwrap_err().contains("numbered 0 to 3"));
        assert!(args.resolve_with(Some("x")).unwrap_err().contains("JOB_COMPLETION_INDEX"));
        let explicit = RunShardArgs { shard: Some(Shard::new(1, 3).unwrap()), shards: None };
        assert_eq!(explicit.resolve_with(Some("2")).unwrap(), Some(Shard::new(1, 3).unwrap()));
        assert_eq!(RunShardArgs::default().resolve_with(Some("2")).unwrap(), None);
    }

    #[test]
    fn fleet_rates_are_divided_but_never_to_nothing() {
        assert_eq!(per_worker(30, 4), 7);
        assert_eq!(per_worker(3, 4), 1);
        assert_eq!(per_worker(0, 4), 0);
        assert_eq!(per_worker(30, 1), 30);
    }
}
