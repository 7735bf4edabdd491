//! Length-prefixed framing: a `u32` little-endian body length, then that many
//! bytes of UTF-8 JSON. Lengths over [`MAX_FRAME_LEN`] are rejected before
//! any buffer is allocated.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest accepted frame body: 8 MiB.
pub const MAX_FRAME_LEN: u32 = 8 * 1024 * 1024;

/// A framing failure: the connection that produced it cannot continue.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The advertised body length exceeds the cap.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Advertised length.
        len: u32,
        /// The cap.
        max: u32,
    },
    /// The stream ended inside a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// An I/O error on the stream.
    #[error("i/o error on the IPC stream")]
    Io(#[from] std::io::Error),
}

/// Most bytes reserved for a frame body before any of it has arrived.
const INITIAL_BODY_CAPACITY: usize = 64 * 1024;

/// Read one frame body. `Ok(None)` means the peer hung up cleanly at a frame
/// boundary.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len_buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut len_buf[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        got += n;
    }
    let len = u32::from_le_bytes(len_buf);
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    // The buffer grows with the bytes that actually arrive (a peer that
    // announces 8 MiB and sends little holds little), and is the caller's
    // to drop once the frame is handled.
    let mut body = Vec::with_capacity((len as usize).min(INITIAL_BODY_CAPACITY));
    let read = (&mut *r)
        .take(u64::from(len))
        .read_to_end(&mut body)
        .await?;
    if read < len as usize {
        return Err(FrameError::Truncated);
    }
    body.shrink_to_fit();
    Ok(Some(body))
}

/// Write one frame body with its length prefix and flush.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> Result<(), FrameError> {
    let len = u32::try_from(body.len())
        .ok()
        .filter(|l| *l <= MAX_FRAME_LEN)
        .ok_or(FrameError::TooLarge {
            len: u32::try_from(body.len()).unwrap_or(u32::MAX),
            max: MAX_FRAME_LEN,
        })?;
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_clean_eof() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"{\"a\":1}").await.unwrap();
        write_frame(&mut buf, b"").await.unwrap();
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r).await.unwrap().unwrap(), b"{\"a\":1}");
        assert_eq!(read_frame(&mut r).await.unwrap().unwrap(), b"");
        assert!(read_frame(&mut r).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversize_rejected_before_allocation() {
        let mut buf = (MAX_FRAME_LEN + 1).to_le_bytes().to_vec();
        buf.extend_from_slice(b"xx");
        let err = read_frame(&mut &buf[..]).await.unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
        let huge = u32::MAX.to_le_bytes();
        assert!(matches!(
            read_frame(&mut &huge[..]).await,
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn body_buffer_is_sized_to_the_frame() {
        for len in [10usize, 100 * 1024] {
            let mut buf = Vec::new();
            write_frame(&mut buf, &vec![b'x'; len]).await.unwrap();
            let body = read_frame(&mut &buf[..]).await.unwrap().unwrap();
            assert_eq!(body.len(), len);
            assert_eq!(body.capacity(), len, "no slack kept past the frame");
        }
    }

    #[tokio::test]
    async fn truncated_frames() {
        let partial_len = [5u8, 0];
        assert!(matches!(
            read_frame(&mut &partial_len[..]).await,
            Err(FrameError::Truncated)
        ));
        let mut partial_body = 10u32.to_le_bytes().to_vec();
        partial_body.extend_from_slice(b"abc");
        assert!(matches!(
            read_frame(&mut &partial_body[..]).await,
            Err(FrameError::Truncated)
        ));
    }
}
