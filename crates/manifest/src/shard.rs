//! Splitting a batch between independent workers: shard `I` of `N` takes the entries whose id hashes
//! to `I`.
//!
//! The function is fixed, documented and platform-independent, so that any version of spinlift on any
//! machine — and any other tool — puts an entry in the same shard:
//!
//! > shard(id) = the first 8 bytes of MD5(the id's UTF-8 bytes), read as a big-endian unsigned 64-bit
//! > integer, modulo N.
//!
//! In a shell: `printf %s "$id" | md5sum | cut -c1-16`, as hex, modulo N. MD5 is not used for security
//! here, only because every platform has it and it spreads similar ids (`photo-0001`, `photo-0002`)
//! evenly.
//!
//! ```
//! use spinlift_manifest::Shard;
//!
//! let shard: Shard = "1/4".parse()?;
//! assert_eq!((shard.index(), shard.count()), (1, 4));
//! // MD5("photos/a.jpg") = 7325d8e0796f8243…, and 0x7325d8e0796f8243 mod 4 = 3.
//! assert_eq!(Shard::of("photos/a.jpg", 4), 3);
//! assert!(!shard.contains("photos/a.jpg"));
//! # Ok::<(), String>(())
//! ```

use md5::{Digest, Md5};

/// One part of a batch split `count` ways: the entries [`Shard::of`] puts at `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Shard {
    /// Shard `index` of `count` (0-based); `Err` when `count` is 0 or `index` is not below it.
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 {
            return Err("the number of shards must be at least 1".into());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is out of range: shards of {count} are numbered 0 to {}",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// The 0-based index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many shards the batch is split into.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The shard of `count` that entry `id` belongs to (see the module docs for the function).
    pub fn of(id: &str, count: u32) -> u32 {
        let digest = Md5::digest(id.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first) % u64::from(count.max(1))) as u32
    }

    /// Whether entry `id` is in this shard.
    pub fn contains(&self, id: &str) -> bool {
        self.count == 1 || Shard::of(id, self.count) == self.index
    }

    /// The tag a shard's files carry: `shard-I-of-N`.
    pub fn tag(&self) -> String {
        format!("shard-{}-of-{}", self.index, self.count)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `I/N`, e.g. `0/4`.
    fn from_str(s: &str) -> Result<Shard, String> {
        let (index, count) =
            s.split_once('/').ok_or_else(|| format!("{s:?} is not a shard: write I/N, e.g. 0/4"))?;
        let number = |part: &str, what: &str| {
            part.trim()
                .parse::<u32>()
                .map_err(|_| format!("{s:?} is not a shard: {what} {part:?} is not a number"))
        };
        Shard::new(number(index, "index")?, number(count, "count")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_function_is_the_documented_one() {
        // `printf %s photos/a.jpg | md5sum` = 7325d8e0796f8243…; 0x7325d8e0796f8243 % 1000 = 811
        // (computed with md5sum and Python, independently of this code).
        assert_eq!(Shard::of("photos/a.jpg", 1000), 811);
        assert_eq!(Shard::of("photos/a.jpg", 1), 0);
    }

    #[test]
    fn bad_shards_are_refused_with_the_reason() {
        assert!("4/4".parse::<Shard>().unwrap_err().contains("numbered 0 to 3"));
        assert!("0/0".parse::<Shard>().unwrap_err().contains("at least 1"));
        assert!("1-4".parse::<Shard>().unwrap_err().contains("I/N"));
        assert!("a/4".parse::<Shard>().unwrap_err().contains("not a number"));
        assert_eq!("2/4".parse::<Shard>().unwrap(), Shard::new(2, 4).unwrap());
    }
}
