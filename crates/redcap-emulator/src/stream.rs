//! Bodies rendered while they are sent: a producer on a blocking thread writes into a
//! [`BodySink`], which hands the server bounded chunks over a bounded channel, so an export of any
//! size holds only a few chunks in memory, and a slow client slows the producer down.

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::store::StoreError;

/// Bytes gathered before a chunk is handed over.
const CHUNK: usize = 256 << 10;
/// Chunks in flight between the producer and the socket.
const IN_FLIGHT: usize = 4;

/// What the producer hands the server.
#[derive(Debug)]
pub enum Piece {
    /// A chunk; more follow.
    Chunk(Bytes),
    /// The last bytes. When it is the first piece, it is the whole body.
    Last(Bytes),
    /// The producer failed after (or before) sending chunks.
    Failed(String),
}

/// Why a producer stopped early.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The client went away; nobody is reading.
    #[error("the client went away")]
    Gone,
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for StreamError {
    fn from(e: rusqlite::Error) -> Self {
        StreamError::Store(StoreError::Sql(e))
    }
}

/// Where a producer writes its body.
#[derive(Debug)]
pub struct BodySink {
    /// `None`: the sink keeps the whole body ([`BodySink::whole`]).
    tx: Option<mpsc::Sender<Piece>>,
    buf: Vec<u8>,
}

impl BodySink {
    /// A sink that keeps the whole body, for a producer whose body is known to be small.
    pub fn whole() -> Self {
        BodySink { tx: None, buf: Vec::new() }
    }

    /// The body a [`BodySink::whole`] kept.
    pub fn into_body(self) -> Vec<u8> {
        self.buf
    }

    /// The buffer to append to; call [`BodySink::flush_if_full`] after writing.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Hands the buffer over once it holds a chunk's worth.
    pub fn flush_if_full(&mut self) -> Result<(), StreamError> {
        let Some(tx) = &self.tx else { return Ok(()) };
        if self.buf.len() < CHUNK {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + (CHUNK >> 2)));
        tx.blocking_send(Piece::Chunk(Bytes::from(chunk))).map_err(|_| StreamError::Gone)
    }
}

/// Renders a body into a [`BodySink`].
pub type Producer = Box<dyn FnOnce(&mut BodySink) -> Result<(), StreamError> + Send>;

/// Runs `producer` on the blocking pool; its pieces arrive on the receiver.
pub fn spawn(producer: Producer) -> mpsc::Receiver<Piece> {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut sink = BodySink { tx: Some(tx), buf: Vec::with_capacity(CHUNK + (CHUNK >> 2)) };
        let last = match producer(&mut sink) {
            Ok(()) => Piece::Last(Bytes::from(std::mem::take(&mut sink.buf))),
            Err(StreamError::Gone) => return,
            Err(StreamError::Store(e)) => Piece::Failed(format!("The REDCap emulator's storage failed: {e}")),
        };
        if let Some(tx) = &sink.tx {
            let _ = tx.blocking_send(last);
        }
    });
    rx
}
