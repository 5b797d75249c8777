//! An output written in batches of whole chunks: a build hands over each
//! conversation's rendered bytes and they go out a batch at a time in one
//! vectored write. Unlike a `BufWriter`, nothing is copied into a buffer
//! first — the kernel's copy is the only one (at 10 000 conversations, a
//! buffer meant copying 813 MB once more).

use std::io::{self, IoSlice, Write};

/// What a batch holds at most before it is written: a few thousand writes
/// per build instead of one per conversation. (Larger batches, 1 MiB, were
/// measured slower on the build machine; docs/performance.md.)
const BATCH_BYTES: usize = 256 * 1024;

/// At most this many chunks per write, well under the kernel's limit of
/// 1 024 slices (`IOV_MAX`).
const BATCH_CHUNKS: usize = 256;

/// A piece of output: the file's fixed punctuation, or rendered bytes handed over.
pub enum Chunk {
    Static(&'static [u8]),
    Owned(Vec<u8>),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Static(bytes) => bytes,
            Chunk::Owned(bytes) => bytes,
        }
    }
}

/// A writer taking whole [`Chunk`]s.
pub struct BatchWriter<W: Write> {
    inner: W,
    chunks: Vec<Chunk>,
    pending: usize,
}

impl<W: Write> BatchWriter<W> {
    pub fn new(inner: W) -> Self {
        Self { inner, chunks: Vec::with_capacity(BATCH_CHUNKS), pending: 0 }
    }

    /// Adds `chunk` to the batch, first writing the batch out if the chunk
    /// would make it larger than a batch may be.
    pub fn push(&mut self, chunk: Chunk) -> io::Result<()> {
        let len = chunk.bytes().len();
        if len == 0 {
            return Ok(());
        }
        if self.pending + len > BATCH_BYTES || self.chunks.len() == BATCH_CHUNKS {
            self.flush_batch()?;
        }
        self.chunks.push(chunk);
        self.pending += len;
        Ok(())
    }

    fn flush_batch(&mut self) -> io::Result<()> {
        let mut slices: Vec<IoSlice> = self.chunks.iter().map(|chunk| IoSlice::new(chunk.bytes())).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match self.inner.write_vectored(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => IoSlice::advance_slices(&mut rest, written),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        self.chunks.clear();
        self.pending = 0;
        Ok(())
    }

    /// Writes what is left and gives the writer back.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.flush_batch()?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `limit` bytes per call, as a file may.
    struct Trickle {
        out: Vec<u8>,
        limit: usize,
        writes: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.limit);
            self.out.extend_from_slice(&buf[..n]);
            self.writes += 1;
            Ok(n)
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut n = 0;
            for buf in bufs {
                let take = buf.len().min(self.limit - n);
                self.out.extend_from_slice(&buf[..take]);
                n += take;
                if n == self.limit {
                    break;
                }
            }
            self.writes += 1;
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writes_every_chunk_in_order_whatever_the_writer_takes_per_call() {
        let chunks: Vec<Vec<u8>> = (0..2000usize).map(|i| vec![(i % 251) as u8; (i * 37) % 700]).chain([vec![7; 3 * BATCH_BYTES]]).collect();
        let expected: Vec<u8> = chunks.iter().flat_map(|c| [b",".as_slice(), c].concat()).collect();
        for limit in [1, 1000, usize::MAX] {
            let mut writer = BatchWriter::new(Trickle { out: Vec::new(), limit, writes: 0 });
            for chunk in &chunks {
                writer.push(Chunk::Static(b",")).unwrap();
                writer.push(Chunk::Owned(chunk.clone())).unwrap();
            }
            let trickle = writer.into_inner().unwrap();
            assert_eq!(trickle.out, expected, "limit {limit}");
        }
    }

    #[test]
    fn batches_small_chunks_into_few_writes() {
        let mut writer = BatchWriter::new(Trickle { out: Vec::new(), limit: usize::MAX, writes: 0 });
        for _ in 0..1000 {
            writer.push(Chunk::Owned(vec![1; 1000])).unwrap();
        }
        let trickle = writer.into_inner().unwrap();
        assert_eq!(trickle.out.len(), 1_000_000);
        // Four batches of 256 chunks (the chunk limit comes before the byte limit here).
        assert!(trickle.writes <= 4, "{} writes", trickle.writes);
    }
}
