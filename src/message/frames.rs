//! Runs of regular frames, sealed and opened on one thread or several.
//!
//! Every frame is an independent AES-GCM operation (its IV is its sequence
//! number and its AAD names it), so a run of frames splits across threads
//! and each frame's bytes are the same whichever thread sealed it. A run is
//! cut into contiguous groups of at least [`MIN_TASK_BYTES`] of plaintext,
//! one rayon task each; below two such groups it stays on the caller's
//! thread.

use rayon::prelude::*;

use crate::crypto::Aead;
use crate::error::{Error, Result};
use crate::format::body::{body_aad, BodyPart};
use crate::format::frame::{
    regular_frame_header, regular_len, sequence_iv, split_regular_frame, REGULAR_HEADER_LEN,
};

/// Least plaintext one parallel task handles: a task hand-off costs a few
/// microseconds, sealing 1 MiB about a hundred.
pub(crate) const MIN_TASK_BYTES: usize = 1 << 20;

/// The per-message state the frames of one message share.
pub(crate) struct Frames<'a> {
    pub aead: &'a dyn Aead,
    pub message_id: &'a [u8],
    /// Plaintext bytes per regular frame (never 0 here).
    pub frame_length: usize,
    /// Threads to spread a run over (1: the calling thread only).
    pub threads: usize,
    /// Tasks per thread: 1 for a one-shot message (the fewest hand-offs);
    /// more for a stream's batches in the background, which share the cores
    /// with the caller's I/O: smaller tasks keep every core busy when one
    /// thread is descheduled, instead of the whole batch waiting for it.
    pub pieces: usize,
}

/// What a stream's batches share, on whichever thread seals or opens them:
/// the body key, the message id, the frame length and the thread count.
pub(crate) struct FrameKeys {
    pub aead: Box<dyn Aead>,
    pub message_id: Vec<u8>,
    pub frame_length: usize,
    pub threads: usize,
}

impl FrameKeys {
    /// For a batch on the caller's thread (and the pool).
    pub(crate) fn frames(&self) -> Frames<'_> {
        Frames {
            aead: self.aead.as_ref(),
            message_id: &self.message_id,
            frame_length: self.frame_length,
            threads: self.threads,
            pieces: 1,
        }
    }

    /// For a batch handed to the pool while the caller does I/O.
    pub(crate) fn background_frames(&self) -> Frames<'_> {
        Frames {
            pieces: BACKGROUND_PIECES,
            ..self.frames()
        }
    }
}

/// Tasks per thread for a stream's batch in the background.
const BACKGROUND_PIECES: usize = 4;

/// Plaintext bytes a stream handles per batch: about 1 MiB per thread, and
/// at least 256 KiB on one thread (large reads and writes), in whole
/// frames.
pub(crate) fn batch_frames(frame_length: usize, threads: usize) -> usize {
    if frame_length == 0 {
        return 1;
    }
    let bytes = if threads <= 1 {
        MIN_TASK_BYTES / 4
    } else {
        threads * MIN_TASK_BYTES
    };
    (bytes / frame_length).max(1)
}

impl Frames<'_> {
    /// Bytes one regular frame takes in the message.
    pub(crate) fn regular_len(&self) -> usize {
        regular_len(self.frame_length)
    }

    /// Frames per task, or `None` to stay on the calling thread.
    fn group(&self, frames: usize) -> Option<usize> {
        let pieces = self.pieces.max(1);
        let min = (MIN_TASK_BYTES / pieces / self.frame_length).max(1);
        if self.threads <= 1 || frames < 2 * min {
            return None;
        }
        Some(frames.div_ceil(self.threads * pieces).max(min))
    }

    /// Seals `plaintext` (a whole number of frames) as regular frames
    /// numbered from `first_seq`, writing them to `out` (exactly
    /// [`Frames::regular_len`] bytes per frame).
    pub(crate) fn seal(&self, first_seq: u32, plaintext: &[u8], out: &mut [u8]) -> Result<()> {
        let f = self.frame_length;
        let slot = self.regular_len();
        let frames = plaintext.len() / f;
        if !plaintext.len().is_multiple_of(f) || out.len() != frames * slot {
            return Err(Error::Internal("frame run of the wrong length"));
        }
        check_seq(first_seq, frames)?;
        match self.group(frames) {
            None => self.seal_run(first_seq, plaintext, out),
            Some(group) => out
                .par_chunks_mut(group * slot)
                .zip(plaintext.par_chunks(group * f))
                .enumerate()
                .try_for_each(|(i, (out, plaintext))| {
                    self.seal_run(first_seq + (i * group) as u32, plaintext, out)
                }),
        }
    }

    fn seal_run(&self, first_seq: u32, plaintext: &[u8], out: &mut [u8]) -> Result<()> {
        let f = self.frame_length;
        let mut aad = Vec::with_capacity(96);
        for (seq, (frame, chunk)) in (first_seq..).zip(
            out.chunks_exact_mut(self.regular_len())
                .zip(plaintext.chunks_exact(f)),
        ) {
            let header = regular_frame_header(seq);
            let (head, rest) = frame.split_at_mut(REGULAR_HEADER_LEN);
            head.copy_from_slice(&header);
            let (body, tag_out) = rest.split_at_mut(f);
            body_aad(&mut aad, self.message_id, BodyPart::Frame, seq, f as u64);
            let iv = sequence_iv(seq);
            let tag = self
                .aead
                .seal_to(&iv, &aad, chunk, body)
                .map_err(|_| Error::Backend("encryption"))?;
            tag_out.copy_from_slice(&tag);
        }
        Ok(())
    }

    /// Opens regular frames (`input`: [`Frames::regular_len`] bytes each,
    /// sequence numbers already checked) into `out` (`frame_length` bytes
    /// each). On failure nothing is left in `out`.
    pub(crate) fn open(&self, first_seq: u32, input: &[u8], out: &mut [u8]) -> Result<()> {
        let f = self.frame_length;
        let slot = self.regular_len();
        let frames = input.len() / slot;
        if !input.len().is_multiple_of(slot) || out.len() != frames * f {
            return Err(Error::Internal("frame run of the wrong length"));
        }
        check_seq(first_seq, frames)?;
        let result = match self.group(frames) {
            None => self.open_run(first_seq, input, out),
            Some(group) => input
                .par_chunks(group * slot)
                .zip(out.par_chunks_mut(group * f))
                .enumerate()
                .try_for_each(|(i, (input, out))| self.open_run(first_seq + (i * group) as u32, input, out)),
        };
        if result.is_err() {
            zeroize::Zeroize::zeroize(out);
        }
        result
    }

    fn open_run(&self, first_seq: u32, input: &[u8], out: &mut [u8]) -> Result<()> {
        let f = self.frame_length;
        let mut aad = Vec::with_capacity(96);
        for (seq, (frame, plain)) in (first_seq..).zip(
            input
                .chunks_exact(self.regular_len())
                .zip(out.chunks_exact_mut(f)),
        ) {
            let (iv, ciphertext, tag) = split_regular_frame(frame, f).ok_or(Error::Decrypt)?;
            body_aad(&mut aad, self.message_id, BodyPart::Frame, seq, f as u64);
            self.aead
                .open_to(iv, &aad, ciphertext, tag, plain)
                .map_err(|_| Error::Decrypt)?;
        }
        Ok(())
    }
}

/// Regular frames are numbered below `u32::MAX` (the final frame may take it).
fn check_seq(first_seq: u32, frames: usize) -> Result<()> {
    let last = u64::from(first_seq) + frames as u64;
    if first_seq == 0 || last > u64::from(u32::MAX) {
        return Err(crate::error::LimitError::TooManyFrames {
            max: u64::from(u32::MAX),
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{IV_LEN, TAG_LEN};

    struct NoAead;
    impl Aead for NoAead {
        fn seal_to(
            &self,
            _: &[u8; IV_LEN],
            _: &[u8],
            _: &[u8],
            _: &mut [u8],
        ) -> crate::crypto::CResult<[u8; TAG_LEN]> {
            Ok([0; TAG_LEN])
        }
        fn seal_in_place(
            &self,
            _: &[u8; IV_LEN],
            _: &[u8],
            _: &mut [u8],
        ) -> crate::crypto::CResult<[u8; TAG_LEN]> {
            Ok([0; TAG_LEN])
        }
        fn open_in_place(&self, _: &[u8; IV_LEN], _: &[u8], buf: &mut [u8]) -> crate::crypto::CResult<usize> {
            Ok(buf.len() - TAG_LEN)
        }
        fn open_to(
            &self,
            _: &[u8; IV_LEN],
            _: &[u8],
            _: &[u8],
            _: &[u8; TAG_LEN],
            _: &mut [u8],
        ) -> crate::crypto::CResult<()> {
            Ok(())
        }
    }

    #[test]
    fn runs_split_only_when_each_task_has_a_mebibyte() {
        let frames = |frame_length, threads| Frames {
            aead: &NoAead,
            message_id: &[0; 32],
            frame_length,
            threads,
            pieces: 1,
        };
        assert_eq!(frames(4096, 1).group(100_000), None);
        assert_eq!(frames(4096, 2).group(511), None);
        assert_eq!(frames(4096, 2).group(512), Some(256));
        assert_eq!(frames(4096, 2).group(1280), Some(640));
        assert_eq!(frames(4096, 8).group(1280), Some(256));
        assert_eq!(frames(65536, 2).group(80), Some(40));
        assert_eq!(frames(64 << 20, 2).group(2), Some(1));
        // In the background: four tasks per thread, of at least 256 KiB.
        let background = |frame_length, threads| Frames {
            pieces: BACKGROUND_PIECES,
            ..frames(frame_length, threads)
        };
        assert_eq!(background(4096, 2).group(127), None);
        assert_eq!(background(4096, 2).group(128), Some(64));
        assert_eq!(background(4096, 2).group(1024), Some(128));
        assert_eq!(background(65536, 2).group(32), Some(4));
    }

    #[test]
    fn frame_numbers_stop_below_the_final_marker() {
        assert!(check_seq(1, 10).is_ok());
        assert!(check_seq(u32::MAX - 1, 1).is_ok());
        assert!(check_seq(u32::MAX - 1, 2).is_err());
        assert!(check_seq(0, 1).is_err());
    }
}
