//! Content-defined chunking (FastCDC v2020) over any reader, with one reused
//! buffer.
//!
//! fastcdc's own `StreamCDC` allocates a zeroed `max_size` buffer per stream
//! and shifts it after every chunk; with thousands of small files that costs
//! more than the hashing. Here the slice chunker runs over a large reused
//! buffer. A cut at position `p` depends only on bytes `p..p+max_size`, so a
//! chunk is accepted only when that window is inside the buffer (or the input
//! has ended); the cut points are therefore exactly those of `StreamCDC`.

use std::io::{self, Read};

use fastcdc::v2020::{FastCDC, Normalization};

use crate::config::ChunkerParams;

pub struct Chunker {
    params: ChunkerParams,
    seed: u64,
    buf: Vec<u8>,
}

fn level(n: u8) -> Normalization {
    match n {
        0 => Normalization::Level0,
        1 => Normalization::Level1,
        2 => Normalization::Level2,
        _ => Normalization::Level3,
    }
}

impl Chunker {
    pub fn new(params: ChunkerParams, seed: u64) -> Chunker {
        Chunker {
            params,
            seed,
            buf: Vec::new(),
        }
    }

    pub fn min_size(&self) -> usize {
        self.params.min_size as usize
    }

    /// Splits everything `r` yields into chunks, calling `emit` with each in
    /// order. Returns the total length. `emit` may fail to stop early.
    pub fn chunk<R: Read, E>(
        &mut self,
        mut r: R,
        mut emit: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, ChunkError<E>> {
        let max = self.params.max_size as usize;
        // Twice the largest chunk: enough for a whole cut window after every
        // refill, and the per-worker buffer is what bounds backup memory
        // (each refill moves at most `max` bytes, a cheap memcpy).
        let cap = max * 2;
        if self.buf.len() < cap {
            self.buf = vec![0u8; cap];
        }
        let (mut start, mut end, mut eof, mut total) = (0usize, 0usize, false, 0u64);
        loop {
            if !eof && end - start < max {
                self.buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
                while end < cap {
                    let n = match r.read(&mut self.buf[end..cap]) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(ChunkError::Read(e)),
                    };
                    if n == 0 {
                        eof = true;
                        break;
                    }
                    end += n;
                }
            }
            if start == end {
                return Ok(total);
            }
            let window = &self.buf[start..end];
            let cdc = FastCDC::with_level_and_seed(
                window,
                self.params.min_size as usize,
                self.params.avg_size as usize,
                max,
                level(self.params.normalization),
                self.seed,
            );
            let mut consumed = 0usize;
            for c in cdc {
                if !eof && c.offset + max > window.len() {
                    break;
                }
                emit(&window[c.offset..c.offset + c.length]).map_err(ChunkError::Emit)?;
                consumed = c.offset + c.length;
                total += c.length as u64;
            }
            start += consumed;
        }
    }
}

#[derive(Debug)]
pub enum ChunkError<E> {
    Read(io::Error),
    Emit(E),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ChunkerParams {
        ChunkerParams {
            algorithm: "fastcdc-v2020".into(),
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
            normalization: 1,
        }
    }

    fn pseudo_random(n: usize) -> Vec<u8> {
        let mut x = 0x9e3779b97f4a7c15u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// A reader that returns tiny, uneven reads, to exercise refills.
    struct Dribble<'a>(&'a [u8], usize);
    impl Read for Dribble<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.1 = self.1 % 7919 + 1;
            let n = self.1.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn cut_points_match_fastcdc_stream_chunker() {
        let data = pseudo_random(3_000_000);
        let p = params();
        let expected: Vec<usize> = fastcdc::v2020::StreamCDC::with_level_and_seed(
            &data[..],
            4096,
            16384,
            65536,
            Normalization::Level1,
            42,
        )
        .map(|c| c.unwrap().length)
        .collect();
        let mut got = Vec::new();
        let mut ch = Chunker::new(p, 42);
        let total = ch
            .chunk(Dribble(&data, 0), |c| {
                got.push(c.len());
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!(total, data.len() as u64);
        assert_eq!(got, expected);
        assert!(got.len() > 50);
    }

    #[test]
    fn seed_changes_cut_points() {
        let data = pseudo_random(1_000_000);
        let cuts = |seed| {
            let mut v = Vec::new();
            Chunker::new(params(), seed)
                .chunk(&data[..], |c| {
                    v.push(c.len());
                    Ok::<(), ()>(())
                })
                .unwrap();
            v
        };
        assert_ne!(cuts(1), cuts(2));
    }

    #[test]
    fn empty_input_has_no_chunks() {
        let mut n = 0;
        let total = Chunker::new(params(), 0)
            .chunk(&b""[..], |_| {
                n += 1;
                Ok::<(), ()>(())
            })
            .unwrap();
        assert_eq!((total, n), (0, 0));
    }
}
