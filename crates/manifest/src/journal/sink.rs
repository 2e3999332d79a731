//! Where the writer puts its bytes: the journal file, or a test double wrapping it (one that counts
//! fsyncs, or fails like a full disk).

use std::fs::File;
use std::io::{self, Write};

/// The journal file as the writer task uses it. [`std::fs::File`] is the real one;
/// [`Journal::open_with_sink`](super::Journal::open_with_sink) wraps the file in another to inject
/// faults or count calls.
///
/// The writer calls [`Sink::append`] once per group of records and [`Sink::sync`] at most once per
/// group. After either fails it calls neither again.
pub trait Sink: Send + 'static {
    /// Writes all of `bytes` at the end of the journal, handed to the operating system before it returns
    /// (no user-space buffering: replay and compaction read the file behind the sink). On error part of
    /// `bytes` may have been written.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// Makes everything appended so far durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
}

impl Sink for File {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }
}

/// A boxed sink, for callers that choose the wrapper at run time.
impl Sink for Box<dyn Sink> {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        (**self).append(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        (**self).sync()
    }
}
